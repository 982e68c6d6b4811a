// The read side both holders share (lib/push/held_content.h), here for a
// complete file: the CCM serving the .cma it packed.
#include "push/held_content.h"

#include <gtest/gtest.h>

#include "support/test_util.h"

namespace cm::push {
namespace {

using test::TempDir;

TEST(CompleteFile, HoldsEveryByteOfTheFile) {
  TempDir d;
  std::string bytes(100000, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 131);
  test::WriteFile(d / "a.cma", bytes);
  auto f = CompleteFile::Open(d / "a.cma");
  ASSERT_TRUE(f.ok()) << f.status().message();
  const HeldContent& c = **f;
  EXPECT_EQ(c.size(), bytes.size());
  EXPECT_TRUE(c.held(0));
  EXPECT_TRUE(c.held(bytes.size() - 1));
  EXPECT_FALSE(c.held(bytes.size()));
  std::string buf(4096, '\0');
  auto n = c.ReadAt(99000, std::span<char>(buf.data(), buf.size()));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1000u);  // up to the end of the file
  EXPECT_EQ(buf.substr(0, 1000), bytes.substr(99000));
  n = c.ReadAt(bytes.size(), std::span<char>(buf.data(), buf.size()));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0u);
}

TEST(CompleteFile, WaitForIsImmediateAndPastTheEndIsNotFound) {
  TempDir d;
  test::WriteFile(d / "a.cma", "0123456789");
  auto f = CompleteFile::Open(d / "a.cma");
  ASSERT_TRUE(f.ok());
  auto past = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  auto w = (*f)->WaitFor(9, past);
  ASSERT_TRUE(w.ok());
  EXPECT_TRUE(*w);
  EXPECT_EQ((*f)->WaitFor(10, past).status().code(), Code::kNotFound);
}

TEST(CompleteFile, AMissingFileIsNotFoundAndADirectoryIsRefused) {
  TempDir d;
  EXPECT_EQ(CompleteFile::Open(d / "missing.cma").status().code(), Code::kNotFound);
  EXPECT_FALSE(CompleteFile::Open(d.path()).ok());
}

}  // namespace
}  // namespace cm::push
