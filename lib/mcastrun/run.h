// cm-mcast's sessions on real sockets: the loops that run the pure cores of
// lib/mcast (Sender, Server, Receiver) on net::Driver, with files, progress,
// reports on stdout and --exec. Each entry point logs its own diagnostics
// (util/log.h) and returns the worst outcome as a Code, which the tool maps
// one-to-one to its exit code (util/exit_codes.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mcast/sender.h"
#include "proto/core.h"
#include "util/group_key.h"
#include "util/status.h"

namespace cm::mcastrun {

// Where to take part and how.
struct Net {
  proto::Address group;         // multicast ADDR:PORT
  uint32_t iface = 0x7f000001;  // join and send on this interface (host order)
  bool loop = true;             // IP_MULTICAST_LOOP
  std::optional<GroupKey> key;  // authenticate every packet
  bool json = false;            // JSON records on stdout instead of text lines
};

struct SendJob {
  Net net;
  // Per-session settings every file shares (id, rate, frame size, passes,
  // receivers, expect, quorum, backup_for); name, size and seed are set here.
  mcast::SenderConfig session;
  std::vector<std::string> files;
  std::optional<uint64_t> final_size;  // the one file still grows to this size
  bool stay = false;                   // then serve the files until SIGINT/SIGTERM
};
// Sends each file in turn. kOk when every receiver completed (or a backup
// stood by), kPartial for a quorum only, kFailure otherwise; file errors
// (kIo, ...) count too.
Code Send(const SendJob& job);

// Serves the files to receivers that want them until SIGINT/SIGTERM (kOk).
Code Serve(const SendJob& job);

struct RecvJob {
  Net net;
  std::string id;           // this host's name in reports
  std::string dir;          // received files go here
  bool daemon = false;      // every session (--serve) instead of one (-o)
  proto::Micros timeout = 30 * proto::kSeconds;  // without a sender
  // Run for each completed file, argv from util/command_template.h ({} = the
  // file's path); empty for none. Never through a shell.
  std::vector<std::string> exec;
  std::string want_file;    // daemon: 'HASH SIZE NAME' lines, re-read when it changes
  proto::Micros want_period = 2 * proto::kSeconds;
  // Keyed: refuse announcements whose sender clock is further than this
  // from ours (ReceiverConfig::replay_window; 0 = off).
  proto::Micros replay_window = 10 * proto::kSeconds;
};
// One session (kOk, kCorrupt on a hash mismatch, kFailure, kNotFound when no
// session was heard in time), or a daemon until SIGINT/SIGTERM (the worst
// session's code).
Code Recv(const RecvJob& job);

// Prints 'HASH SIZE NAME' (or a JSON record) for each file.
Code Hash(const std::vector<std::string>& files, bool json);

}  // namespace cm::mcastrun
