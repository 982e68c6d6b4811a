#include "pushrun/content_body.h"

namespace cm::pushrun {
namespace {

class ContentBody : public http::BodySource {
 public:
  explicit ContentBody(std::shared_ptr<push::HeldContent> held) : held_(std::move(held)) {}
  uint64_t size() const override { return held_->size(); }
  Result<size_t> Read(uint64_t offset, std::span<char> out, std::chrono::steady_clock::time_point deadline) override {
    auto ready = held_->WaitFor(offset, deadline);
    if (!ready.ok()) return ready.status();
    if (!*ready) return size_t{0};
    return held_->ReadAt(offset, out);
  }

 private:
  std::shared_ptr<push::HeldContent> held_;
};

}  // namespace

std::shared_ptr<http::BodySource> MakeContentBody(std::shared_ptr<push::HeldContent> held) {
  return std::make_shared<ContentBody>(std::move(held));
}

}  // namespace cm::pushrun
