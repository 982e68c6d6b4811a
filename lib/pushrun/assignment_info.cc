#include "pushrun/assignment_info.h"

#include "pack/assignment_format.h"
#include "push/chunk_plan.h"
#include "push/held_content.h"

namespace cm::pushrun {

Result<AssignmentInfo> ReadAssignmentInfo(const std::string& path) {
  auto f = push::CompleteFile::Open(path);
  if (!f.ok()) return f.status();
  std::string header(pack::kHeaderSize, '\0');
  auto n = (*f)->ReadAt(0, std::span<char>(header.data(), header.size()));
  if (!n.ok()) return n.status();
  if (*n != header.size()) return Error(Code::kCorrupt, path + ": shorter than an assignment header");
  auto ranges = push::HeadAndTailRanges(header);
  if (!ranges.ok()) return Error(ranges.status().code(), path + ": " + ranges.status().message());
  if (ranges->tail.end != (*f)->size())
    return Error(Code::kCorrupt, path + ": file size does not match its header");
  std::string tail(ranges->tail.size(), '\0');
  auto m = (*f)->ReadAt(ranges->tail.begin, std::span<char>(tail.data(), tail.size()));
  if (!m.ok()) return m.status();
  auto plan = push::ParseChunkPlan(header, tail, nullptr);
  if (!plan.ok()) return Error(plan.status().code(), path + ": " + plan.status().message());
  AssignmentInfo info;
  info.serial = plan->serial();
  info.job = plan->job_id();
  info.type = pack::TypeName(plan->type());
  info.size = plan->file_size();
  info.covered = plan->covered_end() - plan->covered_begin();
  info.chunk_size = plan->chunk_size();
  return info;
}

}  // namespace cm::pushrun
