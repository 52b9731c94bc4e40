#include "lab/ss_watch.hpp"

#include "bench/child_process.hpp"
#include "common/log.hpp"
#include "lab/network.hpp"

#include <charconv>
#include <stdexcept>
#include <sstream>
#include <vector>

namespace chat::lab {
namespace {

long to_number(std::string_view text) {
  long value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

// The value of "key:value" among the whitespace-separated words of `line`, or "".
std::string field(const std::string& line, const std::string& key) {
  std::istringstream words(line);
  std::string word;
  while (words >> word) {
    if (word.size() > key.size() && word.compare(0, key.size(), key) == 0 && word[key.size()] == ':') {
      return word.substr(key.size() + 1);
    }
  }
  return {};
}

}  // namespace

std::string SsSample::describe() const {
  std::string text = state + ", Recv-Q " + std::to_string(recv_q) + ", Send-Q " + std::to_string(send_q);
  if (timer == "keepalive") {
    text += ", keepalive timer, " + std::to_string(timer_count) + " probes sent";
  } else if (timer == "on") {
    text += ", retransmission timer, " + std::to_string(timer_count) + " retransmissions";
  } else if (!timer.empty()) {
    text += ", " + timer + " timer";
  } else {
    text += ", no timer";
  }
  if (unacked > 0) text += ", unacked " + std::to_string(unacked);
  if (!retrans.empty()) text += ", retrans " + retrans;
  if (backoff > 0) text += ", backoff " + std::to_string(backoff);
  if (lastack_ms >= 0) text += ", last ACK " + std::to_string(lastack_ms) + " ms ago";
  return text;
}

std::string SsSample::signature() const {
  return state + "|" + timer + "|" + std::to_string(timer_count) + "|" + std::to_string(unacked) + "|" + retrans + "|" +
         std::to_string(backoff) + "|" + (recv_q > 0 ? "r" : "") + (send_q > 0 ? "s" : "");
}

std::optional<SsSample> parse_ss_record(const std::string& first_line, const std::string& info_line) {
  std::istringstream words(first_line);
  SsSample s;
  std::string recv_q, send_q, local, peer;
  if (!(words >> s.state >> recv_q >> send_q >> local >> peer)) return std::nullopt;
  s.recv_q = to_number(recv_q);
  s.send_q = to_number(send_q);
  // timer:(keepalive,1.9sec,0)
  if (const auto at = first_line.find("timer:("); at != std::string::npos) {
    const auto end = first_line.find(')', at);
    std::string inside = first_line.substr(at + 7, end == std::string::npos ? std::string::npos : end - at - 7);
    std::vector<std::string> parts;
    std::istringstream items(inside);
    for (std::string item; std::getline(items, item, ',');) parts.push_back(item);
    if (!parts.empty()) s.timer = parts[0];
    if (parts.size() > 1) s.timer_left = parts[1];
    if (parts.size() > 2) s.timer_count = static_cast<int>(to_number(parts[2]));
  }
  s.unacked = static_cast<int>(to_number(field(info_line, "unacked")));
  s.retrans = field(info_line, "retrans");
  s.backoff = static_cast<int>(to_number(field(info_line, "backoff")));
  if (const auto lastack = field(info_line, "lastack"); !lastack.empty()) s.lastack_ms = to_number(lastack);
  return s;
}

SsWatch::SsWatch(std::string netns, std::uint16_t server_port, std::uint16_t peer_port, Timeline& timeline)
    : netns_(std::move(netns)), server_port_(server_port), peer_port_(peer_port), timeline_(timeline) {
  thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

SsWatch::~SsWatch() {
  thread_.request_stop();  // wakes the wait in run()
  if (thread_.joinable()) thread_.join();
}

void SsWatch::wait_first_sample() {
  std::unique_lock lock(wait_mutex_);
  first_.wait_for(lock, std::chrono::seconds(5), [this] { return sampled_; });
}

std::optional<SsSample> SsWatch::sample() const {
  static const std::string ss = find_program("ss");
  if (ss.empty()) throw std::runtime_error("no `ss` program (iproute2) found");
  std::vector<std::string> argv;
  if (!netns_.empty()) argv = {ip_path(), "netns", "exec", netns_};
  argv.insert(argv.end(), {ss, "-tnoiH", "state", "all", "sport", "=", ":" + std::to_string(server_port_), "and",
                           "dport", "=", ":" + std::to_string(peer_port_)});
  bench::ChildProcess child(argv, bench::ChildProcess::Output::pipe, bench::ChildProcess::Output::discard);
  child.close_stdin();
  const auto deadline = bench::Clock::now() + std::chrono::seconds(2);
  std::vector<std::string> lines;
  while (auto line = child.out().read_line(deadline)) {
    if (lines.size() < 16) lines.push_back(std::move(*line));  // one record is two lines
  }
  const auto code = child.wait_exit(deadline);
  if (!code) throw std::runtime_error("ss did not finish within 2 s");
  if (*code != 0) throw std::runtime_error("ss failed (exit " + std::to_string(*code) + ")");
  if (lines.empty()) return std::nullopt;
  const std::string info = lines.size() > 1 && !lines[1].empty() && (lines[1][0] == '\t' || lines[1][0] == ' ')
                               ? lines[1]
                               : std::string();
  return parse_ss_record(lines[0], info);
}

void SsWatch::run(std::stop_token stop) {
  set_thread_role("ss");
  std::string last_signature;
  bool failed = false;  // said once, not every 100 ms
  while (!stop.stop_requested()) {
    try {
      const auto at = WallClock::now();
      auto s = sample();
      failed = false;
      if (s) {
        if (s->signature() != last_signature) timeline_.add("ss", "server's socket: " + s->describe(), at);
        last_signature = s->signature();
      } else if (!last_signature.empty()) {
        // The kernel has forgotten the connection: the server closed its socket, or an RST
        // ended it (the server may still hold the descriptor).
        timeline_.add("ss", "server's socket: gone from the kernel's table (closed, or reset)", at);
        last_signature.clear();
      }
    } catch (const std::exception& e) {
      if (!failed) timeline_.add("ss", std::string("cannot sample: ") + e.what());
      failed = true;
    }
    {
      std::lock_guard lock(wait_mutex_);
      sampled_ = true;
    }
    first_.notify_all();
    std::unique_lock lock(wait_mutex_);
    wake_.wait_for(lock, stop, std::chrono::milliseconds(100), [] { return false; });
  }
}

}  // namespace chat::lab
