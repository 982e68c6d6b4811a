// Job mode's messages (docs/protocol/jobs.md, "Messages"): the JSON bodies of
// the node-to-node offer and of the calls nodes make to the base, as typed
// values around the cores' structs (job_node.h). Every Parse is total (bad
// input -> kCorrupt) and bounded (lists of at most kMaxJobServers). Nodes are
// named by their index in the job object's server list; -1 is the base.
// Pure: no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "push/job_book.h"
#include "push/job_node.h"
#include "util/status.h"

namespace cm::push {

constexpr size_t kMaxJobServers = 100000;
constexpr int kJobProtocolVersion = 0;  // a draft: the edge is not wired yet

struct JobServerInfo {
  std::string name, site, url;
  double up_bps = 0;  // measured by the base in earlier jobs (0 = not measured)
  bool operator==(const JobServerInfo&) const = default;
};

// The job object: what every node needs to take part. The base signs it
// (the edge seals it as tree mode seals orders); nodes pass it on unchanged.
struct JobObject {
  std::string job;       // "<client>-<n>"
  std::string base_url;  // http://host:port of the base
  std::vector<JobServerInfo> servers;
  bool operator==(const JobObject&) const = default;
};
std::string Encode(const JobObject& o);
Result<JobObject> ParseJobObject(std::string_view json);
std::vector<FanPeer> PeersOf(const JobObject& o);

// POST /v1/job-offer.
struct JobOfferBody {
  std::string job;
  JobOfferMsg offer;
  std::string from_url;  // where to fetch the log from ("" = the base's base_url)
  bool operator==(const JobOfferBody& o) const;
};
std::string Encode(const JobOfferBody& b);
Result<JobOfferBody> ParseJobOffer(std::string_view json);
std::string Encode(OfferAnswer a);                   // {"answer": "accepted" | "switched" | "declined"}
Result<OfferAnswer> ParseOfferAnswer(std::string_view json);

// POST /v1/job-progress (node -> base): the distribution's facts and the
// entries' states (job_book.h).
struct JobProgressBody {
  std::string job;
  JobProgressMsg progress;
  std::vector<EntryReport> entries;
  bool operator==(const JobProgressBody& o) const;
};
std::string Encode(const JobProgressBody& b);
Result<JobProgressBody> ParseJobProgress(std::string_view json);

// POST /v1/job-entries (node -> base): the node's states of the job's
// entries (items received, commands run), sent when one changes and again
// until the base has them; `progress`: the node moved forward since its
// last report (it extends the node's wait at the deadline).
struct JobEntriesBody {
  std::string job;
  PeerIndex node = 0;
  std::vector<EntryReport> entries;
  bool operator==(const JobEntriesBody& o) const;
};
std::string Encode(const JobEntriesBody& b);
Result<JobEntriesBody> ParseJobEntries(std::string_view json);

// POST /v1/job-help and its answer.
struct JobHelpBody {
  std::string job;
  JobHelpAsk ask;
  bool operator==(const JobHelpBody& o) const;
};
std::string Encode(const JobHelpBody& b);
Result<JobHelpBody> ParseJobHelp(std::string_view json);
struct JobHelpReply {
  NodeRef target = kNoNode;
  bool finished = false, relieve = false;
  double rate_bps = 0;
  bool operator==(const JobHelpReply&) const = default;
};
std::string Encode(const JobHelpReply& r);
Result<JobHelpReply> ParseJobHelpReply(std::string_view json);

// POST /v1/job-source-failed and its answer; POST /v1/job-unreachable.
struct JobSourceFailedBody {
  std::string job;
  JobSourceFailedMsg msg;
  bool operator==(const JobSourceFailedBody& o) const;
};
std::string Encode(const JobSourceFailedBody& b);
Result<JobSourceFailedBody> ParseJobSourceFailed(std::string_view json);
std::string EncodeSourceReply(NodeRef source);  // {"source": N}
Result<NodeRef> ParseSourceReply(std::string_view json);
struct JobUnreachableBody {
  std::string job;
  JobUnreachableMsg msg;
  bool operator==(const JobUnreachableBody& o) const;
};
std::string Encode(const JobUnreachableBody& b);
Result<JobUnreachableBody> ParseJobUnreachable(std::string_view json);

}  // namespace cm::push
