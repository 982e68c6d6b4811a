// The cm-push relay: the daemon on every server that may lead a site.
//
// As a site leader (told by a POST /v1/fetch from the CCM or another leader)
// it fetches an assignment chunk by chunk from its source, checks each chunk
// against the signed chunk table, serves the checked bytes onward at once
// (GET /v1/content/<serial>), asks the CCM whom to serve next, and when it
// holds the whole file: stages it with cm-apply, multicasts it to its members
// with cm-mcast, collects their results and sends one site report to the CCM.
// As a member (POST /v1/expect from its leader) it receives the multicast (or
// fetches over HTTP from the leader when the multicast fails), runs cm-apply
// and reports to the leader. A commit assignment travels the same way.
//
// Files live in the spool directory as <serial>.cma (<serial>.cma.part while
// arriving), so a restarted relay resumes where it stopped; the spool keeps
// the spool_keep serials written last (pushrun/spool_retention.h).
//
// Resources: every fetch attempt and child runs on a thread that is joined
// when it ends; a serial's open file is closed as soon as its part ended
// and no fetch, child or call uses it (a reader keeps its own handle until
// it is done); the children die with the relay
// (util/subprocess.h). So an idle relay holds a fixed set of threads and
// descriptors however many pushes went through it.
// Thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "http/server.h"
#include "util/status.h"

namespace cm::pushrun {

struct RelayOptions {
  std::string name;                 // this server's name (as in the CCM's sites file)
  std::string listen = "0.0.0.0:7710";
  std::string url;                  // how others reach us; default http://<listen>
  std::string spool;                // where assignments are kept
  std::string root;                 // the content root cm-apply stages into ("" = receive only)
  std::string iface;                // multicast interface address (default: the listen address)
  std::string cm_apply = "cm-apply";
  std::string cm_mcast = "cm-mcast";
  std::string pub_key;              // the CCM's public key (required): orders and assignments; passed to cm-apply
  std::string group_key;            // the group key (required): report stamps; cm-mcast --key
  bool allow_unsigned = false;      // accept unsigned assignments (cm-apply --allow-unsigned); orders never
  std::string mcast_rate;           // cm-mcast --rate ("" = its default)
  double member_wait_s = 300;       // how long a leader waits for its members' results
  double member_retry_s = 5;        // how long a leader keeps trying a member it cannot reach
  double idle_timeout_s = 10;       // a source silent this long is given up
  int spool_keep = 10;              // serials whose files the spool keeps (never one in use)
  std::string leader_state = "/run/content-mover/leader.json";  // cm-leader's state file ("" = none)
  std::string metrics;              // node_exporter textfile ("" = none)
  double housekeeping_s = 10;       // metrics written, retention and idle files checked this often (and when a part ends)
  bool verbose = false;
  // Requests for paths the relay does not serve itself go here first (job
  // mode's edge, lib/jobrun): true when it answered into *out.
  std::function<bool(const http::Request&, http::Response* out)> extra_handler;
};

class Relay {
 public:
  static Result<std::unique_ptr<Relay>> Start(const RelayOptions& opts);
  ~Relay();
  std::string url() const;
  // Stops serving and cancels transfers; idempotent.
  void Stop();

  struct Impl;

 private:
  explicit Relay(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cm::pushrun
