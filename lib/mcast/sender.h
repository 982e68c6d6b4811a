// The cm-mcast sender: a pure state machine (lib/proto/core.h). It announces
// one object, sends it block by block at a paced rate, repairs with fresh
// Reed-Solomon parity from aggregated NACKs while new data still flows,
// re-queries silent receivers, caps multicast passes per block and finishes
// stragglers over the unicast stream. As a backup (backup_for set) it stays
// silent until receivers' NACKs go unanswered and a probe of the primary
// fails; it hands back when the primary is heard again.
//
// When the data pass ends it sends at once the parity the lossiest receiver
// is expected to need for the blocks whose NACKs cannot have arrived yet
// (tail parity), so a session does not end with a round trip per block.
//
// It starts before the whole-object hash is known (the session id covers the
// name, size and first 64 KiB only) and announces the hash when the source
// gives it; it sends from a source that is still growing as bytes become
// available (ObjectSource::Available), polling the source every
// kSourcePoll while it waits. A receiver that wants the object (a want
// message) during the session is added to the receivers it waits for.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "mcast/fec.h"
#include "mcast/rate_control.h"
#include "mcast/store.h"
#include "mcast/wire.h"
#include "proto/core.h"

namespace cm::mcast {

using proto::Micros;

struct SenderConfig {
  std::string id = "sender";  // this sender's name (a backup names its primary by it)
  std::string name;           // object name as receivers will store it
  std::optional<Hash256> hash;  // known up front; else asked from the source until it gives it
  uint64_t size = 0;            // the object's (final) size
  uint16_t frame_size = 1440;  // payload bytes per frame
  int block_k = 128;           // data frames per FEC block
  // Wire bits per second (headers included): the cap. The rate control
  // (mcast/rate_control.h) starts at start_rate_bps (0: at the cap, as with
  // a --rate the user knows) and backs off only on congestion.
  uint64_t rate_bps = 500'000'000;
  uint64_t start_rate_bps = 0;
  int max_passes = 4;          // multicast repair rounds per block, then unicast
  std::vector<std::string> receivers;  // expected receiver ids (may be empty)
  int expect = 0;              // or: how many receivers to expect
  int quorum = 0;              // 0 = all
  proto::Address group;
  std::string backup_for;      // non-empty: be a backup for the sender with this id
  std::optional<GroupKey> key;
  uint64_t seed = 1;          // also gives the run id announced (replay defence)
  // Added to core time (µs) to give the Unix wall clock (µs): announcements
  // carry the sender's clock, which keyed receivers check for freshness.
  Micros wall_offset = 0;
  Micros announce_lead = 10 * proto::kMillis;  // announce (4 times) before the first data frame
  Micros announce_interval = 250 * proto::kMillis;
  Micros nack_period = 100 * proto::kMillis;    // base advice; grows with receivers
  Micros query_interval = 300 * proto::kMillis;
  int max_queries = 10;        // unanswered queries before a receiver is declared failed
  Micros stall_timeout = 20 * proto::kSeconds;  // no progress at all -> give up
  Micros primary_timeout = 1500 * proto::kMillis;  // backup: primary silent this long
  Micros probe_timeout = 600 * proto::kMillis;
  Micros linger = 1 * proto::kSeconds;  // answer late NACKs (by unicast) after the end
};

enum class Outcome { kRunning, kAllDone, kQuorum, kFailed };
const char* OutcomeName(Outcome o);

struct ReceiverInfo {
  std::string id;
  proto::Address addr;
  bool heard = false;
  RecvState state = RecvState::kIncomplete;
  std::string reason;
  Micros last_heard = 0;
  uint64_t have_bytes = 0;
  int unanswered = 0;      // queries since last heard
  double loss = 0;         // EWMA of reported loss
  bool slow = false;       // served by unicast instead of multicast repair
  uint64_t unicast_frames = 0;
  // Unicast finish: frames sent and acknowledged (its reports' count), when
  // the count last grew, and the rate it takes them at (frames/s).
  uint64_t uni_sent = 0, uni_acked = 0, uni_rate_acked = 0;
  Micros uni_progress = 0, uni_rate_at = 0;
  double uni_rate = 0;
  uint64_t nacks = 0;
  bool answered = false;   // reported since the last query
};

struct SenderStats {
  uint64_t data_frames = 0, repair_frames = 0, unicast_frames = 0, announces = 0, queries = 0;
  uint64_t bytes = 0;  // multicast datagram bytes sent
  uint64_t nack_runs = 0;
  uint64_t tail_parity = 0;   // repair frames sent at the end of the data pass before any NACK (of repair_frames)
  Micros pacing_lost = 0;     // sending time lost to late wake-ups beyond the burst credit
};

class Sender {
 public:
  // source must outlive the sender.
  Sender(SenderConfig cfg, ObjectSource* source);

  void Start(Micros now, proto::Effects* out);
  void OnDatagram(Micros now, const proto::Address& from, std::string_view bytes, proto::Effects* out);
  void OnTimer(Micros now, proto::Effects* out);

  Outcome outcome() const { return outcome_; }
  // True once the outcome is known and the linger period is over.
  bool finished() const { return finished_; }
  bool active() const { return active_; }  // a backup that has taken over (a primary: always)
  uint64_t rate_bps() const { return rate_; }
  const RateControl& rate_control() const { return rc_; }
  const std::map<std::string, ReceiverInfo>& receivers() const { return recv_; }
  const SenderStats& stats() const { return stats_; }
  uint32_t session() const { return session_; }  // 0 until the first bytes are available
  uint64_t run() const { return run_; }          // this run's id in announcements (never 0)
  bool hash_known() const { return hash_.has_value(); }

  // Adds a receiver to wait for (a want from it during the session).
  void AddReceiver(Micros now, const std::string& id, const proto::Address& addr, proto::Effects* out);

  // How often a sender waiting for its source (bytes or hash) looks again.
  static constexpr Micros kSourcePoll = 2 * proto::kMillis;

 private:
  struct BlockState {
    uint8_t pass = 0;
    uint8_t used = 0;      // parity symbols sent so far (fresh ones only)
    int data_resent = 0;   // data frames sent again in repair rounds (when parity runs short)
    Micros last_repair = 0;
    Micros sent_at = 0;    // when its data pass ended
  };
  struct UnicastJob {
    std::string id;
    uint32_t block;
    int need = 0;  // symbols the receiver lacks (0: unknown, send the whole block)
  };

  void Pump(Micros now, proto::Effects* out);
  bool Prepare(Micros now, proto::Effects* out);  // session id from the first bytes; false: not yet
  void BeginSession(Micros now, proto::Effects* out);
  void RefreshSource(Micros now, proto::Effects* out);
  uint64_t Avail();
  void OnWant(Micros now, const proto::Address& from, const Message& m, proto::Effects* out);
  void Emit(const Message& m, const proto::Address& to, proto::Transport t, proto::Effects* out);
  Message Base(Type t) const;
  void SendAnnounce(Micros now, proto::Effects* out, const proto::Address* to = nullptr);
  bool SendOneFrame(Micros now, proto::Effects* out);
  // Sends queued unicast jobs within each receiver's window; true when more
  // could go now (the per-call limit stopped it).
  bool SendUnicast(Micros now, proto::Effects* out);
  uint64_t UnicastWindow(const ReceiverInfo& r) const;
  void OnUnicastAck(Micros now, ReceiverInfo& r, uint64_t acked);
  void SendQuery(Micros now, proto::Effects* out);
  // Marks every receiver still incomplete failed (the session cannot finish).
  void FailIncomplete(const std::string& why, proto::Effects* out);
  void Evaluate(Micros now, proto::Effects* out);
  void Finish(Micros now, Outcome o, proto::Effects* out);
  void OnStatus(Micros now, const proto::Address& from, const Message& m, proto::Effects* out);
  void OnNack(Micros now, ReceiverInfo& r, uint32_t block, int need, uint8_t seen_pass, proto::Effects* out);
  void AdjustRate(Micros now, proto::Effects* out);
  void BackupTick(Micros now, proto::Effects* out);
  void TakeOver(Micros now, proto::Effects* out);
  void SendProbe(Micros now, bool for_nack, proto::Effects* out);
  bool LoadBlock(uint32_t b, std::vector<uint8_t>* buf);
  // The next fresh parity symbol of block b (primary from the bottom, backup
  // from the top of the symbol space); -1 when the space is used up.
  int NextParityEsi(uint32_t b) const;
  // Parity symbol `esi` of block b (whose data is in block_buf_), computed
  // with the next few in one pass when it is not among those computed last.
  const uint8_t* Parity(uint32_t b, int esi, int ahead);
  void QueueTailParity(Micros now, proto::Effects* out);
  const RsCode& Code(int k);
  Micros NackPeriod() const;
  Micros FrameCost(size_t bytes);  // pacing cost of one datagram of `bytes`
  ReceiverInfo& Info(const std::string& id);

  SenderConfig cfg_;
  ObjectSource* source_;
  Geometry geo_;
  uint32_t session_ = 0;
  uint64_t run_ = 1;              // random per Sender (from the seed), never 0
  uint64_t started_ms_ = 0;       // wall clock at Start (Unix ms)
  bool ready_ = false;            // session id known (the first bytes were available)
  std::optional<Hash256> hash_;
  uint64_t avail_ = 0;            // bytes of the source known to be available
  bool source_wait_ = false;      // the data pass waits for the source to grow
  const GroupKey* key_;
  proto::Rng rng_;
  Outcome outcome_ = Outcome::kRunning;
  bool finished_ = false;
  bool active_ = true;
  bool tail_ = false;             // all data frames sent once
  Micros started_ = 0, data_start_ = 0, finish_at_ = 0, last_progress_ = 0;
  Micros last_growth_ = 0;  // a growing source last grew (or our session began)
  bool growth_watched_ = false;  // set once our session began
  Micros next_announce_ = 0, next_send_ = 0, next_query_ = proto::kNever, next_rate_check_ = 0;
  uint32_t epoch_ = 0, query_seq_ = 0;
  uint64_t rate_;
  RateControl rc_;
  uint64_t rate_said_ = 0;      // the rate last named in an event
  double median_loss_ = 1.0;    // receivers' median loss (1 with fewer than two)
  uint32_t frame_seq_ = 0;      // multicast data frames sent (Data::seq)
  uint64_t pace_carry_ns_ = 0;  // pacing remainder below a microsecond
  // Data pass position.
  uint32_t next_block_ = 0;
  uint32_t next_esi_ = 0;
  std::vector<BlockState> blocks_;
  std::deque<uint32_t> repairs_;  // blocks with a queued repair round
  std::map<uint32_t, int> pending_;  // block -> queued repair count (aggregated max)
  std::deque<UnicastJob> unicast_;
  // (id, block) -> the receiver's uni_sent once the block's frames were
  // sent: they have all arrived when its acknowledged count reaches it.
  std::map<std::pair<std::string, uint32_t>, uint64_t> unicast_sent_;
  std::map<std::string, ReceiverInfo> recv_;
  std::map<int, std::unique_ptr<RsCode>> codes_;
  uint32_t cached_block_ = UINT32_MAX;
  std::vector<uint8_t> block_buf_;  // block being repaired
  uint32_t data_block_ = UINT32_MAX;
  std::vector<uint8_t> data_buf_;   // block of the data pass
  std::vector<uint8_t> frame_buf_;
  uint32_t parity_block_ = UINT32_MAX;  // parity computed ahead (Parity)
  std::vector<int> parity_esis_;
  std::vector<uint8_t> parity_buf_;
  size_t parity_next_ = 0;
  uint64_t progress_sum_ = 0;
  SenderStats stats_;
  // Backup.
  Micros primary_heard_ = 0;
  Micros probe_deadline_ = proto::kNever;
  uint32_t probe_nonce_ = 0;
  bool probe_for_nack_ = false;  // the pending probe answers NACKs sent to us
  Micros last_alert_ = -proto::kSeconds * 100;
  std::map<std::string, Micros> hash_pushed_;  // receiver -> when it was last sent the hash by unicast
};

}  // namespace cm::mcast
