// Small file helpers for tests: a file's whole text, and its permission bits.
//
// Not thread safe in any interesting way: plain reads of the file system.
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace chat::test {

// The whole file ("" if it cannot be read).
inline std::string file_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The permission bits (0600, ...); 07777 + 1 if the file cannot be stat'ed, which no check of a
// mode will match.
inline mode_t mode_of(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 010000;
  return st.st_mode & 0777;
}

}  // namespace chat::test
