// `cm-push base`: job mode's base daemon (docs/protocol/jobs.md, "The base").
// Serves the nodes (jobrun/job_edge.h, as the root of every job) and its
// clients on one HTTP endpoint. Clients prove they may use it with the token
// in STATE/base.token (0600, made on first start): whoever can read the
// state directory is a client.
//
//   POST /v1/client/open   {"client": C, "servers": [names]?, "timeout": S?}
//                                                                  -> {"job": J, "servers": [...]}
//   POST /v1/client/add    {"job": J, "path": "/abs/file"}        -> {"entry": N, "kind": K}
//                          the base reads the file (a client on the base's machine) and
//                          appends it as entry N, signed record by record; K is
//                          "assignment" when it is one (cm-pack's), else "file"
//   POST /v1/client/cmd    {"job": J, "command": "stage"|"commit"|"rollback"|"hook", "arg": A}
//                                                                  -> {"entry": N}
//   POST /v1/client/stream {"job": J, "name": F}                   -> {"entry": N} (a new stream)
//   POST /v1/client/stream-data?job=J&entry=N   (body: the next bytes)
//   POST /v1/client/stream-end  {"job": J, "entry": N}
//   POST /v1/client/end    {"job": J}                              (no more entries)
//   GET  /v1/client/status?job=J                                   -> the job, its entries and
//                          every server's state of each; "finished": true once every server
//                          has finished every entry or was given up (push/job_book.h);
//                          `cm-push job wait` asks again until then
// The job's notices (received, completed, failed, given-up, finished) are
// appended to STATE/jobs/<job>.notices (JSON lines) and given to the
// `notify` program, one run per notice, in order. Each site's upload rate as
// the last finished job measured it is kept in STATE/rates.json and carried
// by every later job's object. Jobs are not kept across a restart of the base.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "http/server.h"
#include "pack/keys.h"
#include "push/sites.h"
#include "util/group_key.h"
#include "util/status.h"

namespace cm::jobrun {

struct BaseServiceOptions {
  push::SitesConfig sites;
  std::set<std::string> hooks;        // the hook names a job's "hook" command may name
  std::vector<std::string> notify;    // argv run per notice (CM_JOB, CM_NOTICE, ... in its environment); empty = none
  std::string state_dir;   // STATE: base.token, jobs/<job>.log
  pack::SigningKey key;    // signs every record
  std::optional<GroupKey> group_key;  // CM-Auth on the nodes' calls and the base's offers (jobrun/job_edge.h)
  std::string url;         // how nodes reach the base: http://host:port
};

class BaseService {
 public:
  static Result<std::unique_ptr<BaseService>> Start(BaseServiceOptions opts);
  ~BaseService();
  http::Response Handle(const http::Request& req);
  void Stop();
  struct Impl;

 private:
  explicit BaseService(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The token a client sends (X-CM-Token), read from STATE/base.token.
Result<std::string> ReadBaseToken(const std::string& state_dir);

}  // namespace cm::jobrun
