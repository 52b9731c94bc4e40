#include "server/transcript.hpp"

#include "common/log.hpp"
#include "common/render.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <stdexcept>

namespace chat {
namespace {

std::string date_stamp() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm local{};
  localtime_r(&t, &local);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &local);
  return buf;
}

}  // namespace

Transcript::Transcript(const std::string& path) : path_(path) {
  if (path.empty()) return;
  file_ = std::fopen(path.c_str(), "a");
  if (!file_) throw std::runtime_error("cannot open log file " + path + ": " + std::strerror(errno));
  writer_ = std::jthread([this] { write_loop(); });
}

Transcript::~Transcript() {
  stop();
  if (file_) std::fclose(file_);
}

void Transcript::stop() {
  queue_.close();
  if (writer_.joinable()) writer_.join();
}

void Transcript::record(const Event& event, std::optional<std::size_t> online) {
  using K = Event::Kind;
  if (path_.empty()) return;
  if (event.kind != K::join && event.kind != K::leave && event.kind != K::msg && event.kind != K::me &&
      event.kind != K::nick) {
    return;
  }
  // The operator's record keeps the detail of each leave (which thread noticed, when).
  if (auto text = render_event(event, online, /*verbose=*/true)) note(*text);
}

void Transcript::note(const std::string& text) {
  if (path_.empty()) return;
  auto line = std::make_shared<const std::string>(date_stamp() + " " + text + "\n");
  if (queue_.push(std::move(line)) == SendQueue::Push::full) ++dropped_;
}

void Transcript::reopen() {
  if (path_.empty()) return;
  reopen_ = true;
  // An empty line wakes the writer if it is waiting; it writes nothing.
  if (queue_.push(std::make_shared<const std::string>()) == SendQueue::Push::full) ++dropped_;
}

void Transcript::write_loop() {
  set_thread_role("transcript");
  std::string batch;
  std::uint64_t reported = 0;
  while (true) {
    batch.clear();
    if (queue_.pop(batch, 64 * 1024) != SendQueue::Pop::lines) break;
    if (std::fwrite(batch.data(), 1, batch.size(), file_) != batch.size() || std::fflush(file_) != 0) {
      log_warn("cannot write the log file: ", std::strerror(errno));
    }
    // The batch just written was queued before (or with) the request: it belongs to the old file.
    if (reopen_.exchange(false)) {
      if (std::FILE* fresh = std::fopen(path_.c_str(), "a")) {
        std::fclose(file_);
        file_ = fresh;
        log_info("reopened the log file ", path_);
      } else {
        log_warn("cannot reopen the log file ", path_, ": ", std::strerror(errno), "; still writing to the old one");
      }
    }
    if (const auto d = dropped_.load(); d != reported) {
      log_warn(d - reported, " transcript lines dropped: the log file is too slow");
      reported = d;
    }
  }
}

}  // namespace chat
