// TempDir: a fresh directory under the system temp dir for one test, removed with everything in
// it at scope exit.
//
// Not thread safe: one test thread creates, uses and destroys it (the name counter is atomic, so
// tests on different threads may each make their own).
#pragma once

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

namespace chat::test {

class TempDir {
 public:
  // <temp dir>/<prefix>_<pid>_<n>, emptied if it was there already.
  explicit TempDir(std::string_view prefix) {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            (std::string(prefix) + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace chat::test
