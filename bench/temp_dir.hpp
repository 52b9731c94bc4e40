// TempDir: a directory of a run's own under $TMPDIR (or /tmp), made with mkdtemp (mode 0700) and
// removed with everything in it when the object goes. chatbench history keeps its database
// files there, and a chatserver started with --tls its self-signed certificate and key.
//
// Threads: one thread creates, uses and destroys it.
#pragma once

#include <string>

namespace chat::bench {

class TempDir {
 public:
  // $TMPDIR/<prefix>-XXXXXX. Throws std::system_error.
  explicit TempDir(const std::string& prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace chat::bench
