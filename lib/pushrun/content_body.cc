#include "pushrun/content_body.h"

namespace cm::pushrun {
namespace {

class ContentBody : public http::BodySource {
 public:
  ContentBody(std::shared_ptr<push::HeldContent> held, std::shared_ptr<std::atomic<uint64_t>> served)
      : held_(std::move(held)), served_(std::move(served)) {}
  uint64_t size() const override { return held_->size(); }
  Result<size_t> Read(uint64_t offset, std::span<char> out, std::chrono::steady_clock::time_point deadline) override {
    auto ready = held_->WaitFor(offset, deadline);
    if (!ready.ok()) return ready.status();
    if (!*ready) return size_t{0};
    auto n = held_->ReadAt(offset, out);
    if (n.ok() && served_) *served_ += *n;
    return n;
  }

 private:
  std::shared_ptr<push::HeldContent> held_;
  std::shared_ptr<std::atomic<uint64_t>> served_;
};

}  // namespace

std::shared_ptr<http::BodySource> MakeContentBody(std::shared_ptr<push::HeldContent> held,
                                                  std::shared_ptr<std::atomic<uint64_t>> served) {
  return std::make_shared<ContentBody>(std::move(held), std::move(served));
}

}  // namespace cm::pushrun
