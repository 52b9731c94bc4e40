#include "lab/timeline.hpp"

#include <algorithm>
#include <charconv>
#include <mutex>
#include <ctime>

namespace chat::lab {
namespace {

// `word` occurs in `text` on its own: not inside a longer nickname, number or port.
bool contains_word(std::string_view text, std::string_view word) {
  auto is_word_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '!' ||
           c == '-';
  };
  for (std::size_t at = text.find(word); at != std::string_view::npos; at = text.find(word, at + 1)) {
    const bool starts = at == 0 || !is_word_char(text[at - 1]) || word.front() == '#' || word.front() == ':';
    const std::size_t end = at + word.size();
    if (starts && (end == text.size() || !is_word_char(text[end]))) return true;
  }
  return false;
}

// Events of chatlab's own making are never left out: the observer's lines (the others' view),
// the victim's, chatlab's steps and ss samples.
bool is_server_source(std::string_view source) {
  return source != "observer" && source != "chatlab" && source != "victim" && source != "ss";
}

// "reader #2" for a "joined from 127.0.0.1:4000 as #2 (protocol mode)" line, or a "resumed
// from 127.0.0.1:4000 as #3 ..." line (a seat taken back on a new connection); "" for any other.
std::string reader_before_join(std::string_view text) {
  if (text.rfind("joined from ", 0) != 0 && text.rfind("resumed from ", 0) != 0) return {};
  const auto at = text.find(" as #");
  if (at == std::string_view::npos) return {};
  auto end = at + 5;
  while (end < text.size() && text[end] >= '0' && text[end] <= '9') ++end;
  if (end == at + 5) return {};
  return "reader " + std::string(text.substr(at + 4, end - at - 4));
}

int number(std::string_view text) {
  int value = -1;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

}  // namespace

double ms_between(WallClock::time_point from, WallClock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

std::optional<ServerLine> parse_server_line(std::string_view line, WallClock::time_point received) {
  // HH:MM:SS.fff[fff] [role] level: message
  if (line.size() < 14 || line[2] != ':' || line[5] != ':' || line[8] != '.') return std::nullopt;
  const auto space = line.find(' ');
  if (space == std::string_view::npos || space + 2 >= line.size() || line[space + 1] != '[') return std::nullopt;
  const auto close = line.find("] ", space);
  if (close == std::string_view::npos) return std::nullopt;
  const auto colon = line.find(": ", close);
  if (colon == std::string_view::npos) return std::nullopt;
  const int hours = number(line.substr(0, 2));
  const int minutes = number(line.substr(3, 2));
  const int seconds = number(line.substr(6, 2));
  const auto fraction = line.substr(9, space - 9);
  if (hours < 0 || minutes < 0 || seconds < 0 || fraction.empty() || fraction.size() > 6) return std::nullopt;
  int micros = number(fraction);
  if (micros < 0) return std::nullopt;
  for (auto digits = fraction.size(); digits < 6; ++digits) micros *= 10;

  // The stamp is local time of day: put it on the day of `received`, then move it a day if
  // that is nearer (a run across midnight).
  const std::time_t t = WallClock::to_time_t(received);
  std::tm local{};
  std::time_t made = 0;
  {
    // glibc's mktime rereads the time zone each call (tzset), freeing and copying its name
    // under a lock of its own that ThreadSanitizer cannot see: with two chatservers' drain
    // threads parsing at once (instance-lost), one at a time.
    static std::mutex time_zone;
    std::lock_guard lock(time_zone);
    localtime_r(&t, &local);
    local.tm_hour = hours;
    local.tm_min = minutes;
    local.tm_sec = seconds;
    local.tm_isdst = -1;
    made = std::mktime(&local);
  }
  auto at = WallClock::from_time_t(made) + std::chrono::microseconds(micros);
  using namespace std::chrono_literals;
  if (at - received > 12h) at -= 24h;
  if (received - at > 12h) at += 24h;

  ServerLine parsed;
  parsed.at = at;
  parsed.role = std::string(line.substr(space + 2, close - space - 2));
  parsed.level = std::string(line.substr(close + 2, colon - close - 2));
  parsed.message = std::string(line.substr(colon + 2));
  return parsed;
}

void Timeline::add(std::string source, std::string text, WallClock::time_point at) {
  {
    std::lock_guard lock(mutex_);
    // An ignored client's lines after its join (its nickname is known from the start) do not
    // count against the limit; its few lines before it (by number and port) go in events().
    if (is_server_source(source) && std::any_of(ignored_.begin(), ignored_.end(), [&](const std::string& nick) {
          return contains_word(source, nick) || contains_word(text, nick);
        })) {
      return;
    }
    if (events_.size() >= max_events) {
      ++dropped_;
      return;
    }
    events_.push_back(LabEvent{at, std::move(source), std::move(text)});
  }
  added_.notify_all();
}

bool Timeline::wait_for(const std::function<bool(const std::string&, const std::string&)>& match,
                        std::chrono::steady_clock::time_point deadline) const {
  std::unique_lock lock(mutex_);
  std::size_t checked = 0;
  return added_.wait_until(lock, deadline, [&] {
    for (; checked < events_.size(); ++checked) {
      if (match(events_[checked].source, events_[checked].text)) return true;
    }
    return false;
  });
}

void Timeline::add_server_line(const std::string& line, const std::string& prefix) {
  const auto now = WallClock::now();
  if (auto parsed = parse_server_line(line, now)) {
    // Debug lines are left out, but for the listener's "accepted 127.0.0.1:4000 as #2": it
    // names each connection's number (the ignored clients' lines are found by it).
    if (parsed->level == "debug" && !(parsed->role == "listener" && parsed->message.rfind("accepted ", 0) == 0)) return;
    add(prefix + parsed->role, parsed->level == "trace" || parsed->level == "info"
                                     ? std::move(parsed->message)
                                     : parsed->level + ": " + parsed->message,
        parsed->at);
  } else {
    add(prefix + "server", line, now);  // "chatserver listening on ...", or anything unexpected
  }
}

void Timeline::ignore_client(std::string nick, std::uint16_t port) {
  std::lock_guard lock(mutex_);
  ignored_.push_back(std::move(nick));
  ignored_ports_.push_back(port);
}

void Timeline::mark_fault(WallClock::time_point at) {
  std::lock_guard lock(mutex_);
  fault_ = at;
}

std::optional<WallClock::time_point> Timeline::fault() const {
  std::lock_guard lock(mutex_);
  return fault_;
}

std::size_t Timeline::dropped() const {
  std::lock_guard lock(mutex_);
  return dropped_;
}

std::vector<LabEvent> Timeline::events() const {
  std::lock_guard lock(mutex_);
  // The ignored clients' numbers, from the listener's lines about their ports.
  std::vector<std::string> words = ignored_;
  for (const auto& e : events_) {
    if (e.source != "listener") continue;
    for (auto port : ignored_ports_) {
      const std::string needle = ":" + std::to_string(port) + " as #";
      if (const auto at = e.text.find(needle); at != std::string::npos) {
        words.push_back(e.text.substr(at + needle.size() - 1));
      }
    }
  }
  for (auto port : ignored_ports_) words.push_back(":" + std::to_string(port));
  std::vector<LabEvent> kept;
  for (const auto& e : events_) {
    // A second chatserver's lines ("B ...", instance-lost) have numbers and ports of their own:
    // only the ignored clients' nicknames apply to them.
    const auto& applied = e.source.rfind("B ", 0) == 0 ? ignored_ : words;
    const bool ignored = is_server_source(e.source) && std::any_of(applied.begin(), applied.end(), [&](const std::string& w) {
      return contains_word(e.source, w) || contains_word(e.text, w);
    });
    if (!ignored) kept.push_back(e);
  }
  // One name per reader thread: "reader #2" takes the name it had once its client joined (on
  // a second chatserver: "B reader #1" becomes "B reader victim").
  std::vector<std::pair<std::string, std::string>> renamed;  // {"reader #2", "reader victim"}
  for (const auto& e : kept) {
    const std::string prefix = e.source.rfind("B ", 0) == 0 ? "B " : "";
    if (e.source.rfind(prefix + "reader ", 0) != 0) continue;
    if (auto before = reader_before_join(e.text); !before.empty() && prefix + before != e.source) {
      renamed.emplace_back(prefix + before, e.source);
    }
  }
  for (auto& e : kept) {
    for (const auto& [before, after] : renamed) {
      if (e.source == before) e.source = after;
    }
  }
  std::stable_sort(kept.begin(), kept.end(), [](const LabEvent& a, const LabEvent& b) { return a.at < b.at; });
  return kept;
}

}  // namespace chat::lab
