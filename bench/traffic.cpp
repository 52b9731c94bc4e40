#include "bench/traffic.hpp"

#include <algorithm>
#include <random>
#include <sstream>

namespace chat::bench {
namespace {

using namespace std::chrono_literals;

constexpr auto chatter_quiet = 3s;  // no announcement for this long: the chatter is over
constexpr auto progress_every = 5s;

}  // namespace

JoinOutcome join_all(Swarm& swarm, Clock::time_point deadline, std::ostream& progress) {
  return join_all(std::vector<Swarm*>{&swarm}, deadline, progress);
}

JoinOutcome join_all(const std::vector<Swarm*>& swarms, Clock::time_point deadline, std::ostream& progress) {
  const auto start = Clock::now();
  const bool announces = swarms.front()->options().protocol != Protocol::asio;
  JoinOutcome out;
  auto total = [&](auto of) {
    std::uint64_t sum = 0;
    for (const auto* s : swarms) sum += of(*s);
    return sum;
  };
  out.clients = total([](const Swarm& s) { return s.size(); });
  const auto ever_joined = [&] { return total([](const Swarm& s) { return s.ever_joined(); }); };
  // A member expects to hear of every client that joined after it: all who ever joined, less
  // those named in its roster (itself included). If some of them were dropped before they were
  // announced, the count is never reached, and the quiet period ends the wait.
  auto expected = [&] {
    const auto everyone = ever_joined();
    std::uint64_t sum = 0;
    for (const auto* s : swarms) {
      for (std::size_t i = 0; i < s->size(); ++i) {
        const auto& c = s->client(i);
        if (c.state != Swarm::State::joined || c.roster == 0) continue;
        sum += everyone > c.roster ? everyone - c.roster : 0;
      }
    }
    return sum;
  };
  auto seen = [&] {
    std::uint64_t sum = 0;
    for (const auto* s : swarms) {
      for (std::size_t i = 0; i < s->size(); ++i) sum += s->client(i).chatter;
    }
    return sum;
  };
  auto latest = [&](auto of) {
    Clock::time_point t{};
    for (const auto* s : swarms) t = std::max(t, of(*s));
    return t;
  };
  auto next_progress = start + progress_every;
  // With several swarms, each gets a short turn, so none of them waits on another's sockets.
  const auto turn = swarms.size() > 1 ? std::chrono::milliseconds(1) : std::chrono::milliseconds(100);
  while (true) {
    const auto now = Clock::now();
    const auto in_room = total([](const Swarm& s) { return s.joined(); });
    const auto ended = total([](const Swarm& s) { return s.ended(); });
    if (in_room + ended == out.clients) {
      if (!announces) break;
      const auto last = std::max(latest([](const Swarm& s) { return s.last_chatter(); }),
                                 latest([](const Swarm& s) { return s.last_join(); }));
      if (seen() >= expected()) break;
      if (now - last >= chatter_quiet) break;
    }
    if (now >= deadline) {
      out.timed_out = true;
      break;
    }
    if (now >= next_progress) {
      progress << "  ... " << in_room << " of " << out.clients << " in the room, " << ended << " ended, after "
               << std::chrono::duration_cast<std::chrono::seconds>(now - start).count() << " s\n";
      next_progress = now + progress_every;
    }
    for (auto* s : swarms) s->run_once(std::min(deadline, Clock::now() + turn));
  }
  out.joined = total([](const Swarm& s) { return s.joined(); });
  out.refused = total([](const Swarm& s) { return s.refused(); });
  out.dropped = total([](const Swarm& s) { return s.dropped(); });
  out.chatter_seen = seen();
  out.chatter_expected = expected();
  const auto last_join = latest([](const Swarm& s) { return s.last_join(); });
  const auto last_chatter = latest([](const Swarm& s) { return s.last_chatter(); });
  if (ever_joined() > 0) out.last_join_ms = millis_between(start, last_join);
  out.chatter_end_ms = std::max(out.last_join_ms, last_chatter > start ? millis_between(start, last_chatter) : 0.0);
  for (const auto* s : swarms) {
    for (std::size_t i = 0; i < s->size(); ++i) {
      const auto& c = s->client(i);
      if (c.state == Swarm::State::ended) ++out.reasons[c.end_reason];
    }
  }
  return out;
}

std::string describe_reasons(const std::map<std::string, std::size_t>& reasons, std::size_t max) {
  std::vector<std::pair<std::size_t, std::string>> sorted;
  for (const auto& [reason, n] : reasons) sorted.emplace_back(n, reason);
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::string out;
  for (std::size_t k = 0; k < sorted.size() && k < max; ++k) {
    if (!out.empty()) out += "; ";
    out += std::to_string(sorted[k].first) + " x " + sorted[k].second;
  }
  if (sorted.size() > max) out += "; ...";
  return out;
}

Traffic::Traffic(Swarm& swarm, std::size_t size)
    : swarm_(swarm), size_(size), tag_(std::random_device{}() & 0xffffffu), base_(Clock::now()) {
  swarm_.on_frame = [this](std::size_t client, const Seen& seen, Clock::time_point now) { on_frame(client, seen, now); };
}

void Traffic::begin(std::vector<std::size_t> sender_clients, bool global_order, const Shared* shared) {
  local_of_sender_.assign(sender_clients.size(), -1);
  sender_nicks_.clear();
  for (std::size_t k = 0; k < sender_clients.size(); ++k) {
    sender_nicks_.push_back(swarm_.options().nick_prefix + std::to_string(sender_clients[k]));
  }
  for (std::size_t i = 0; i < swarm_.size(); ++i) {
    for (std::size_t k = 0; k < sender_clients.size(); ++k) {
      if (sender_clients[k] == swarm_.id(i)) local_of_sender_[k] = static_cast<long>(i);
    }
  }
  if (shared) tag_ = shared->tag;
  const std::size_t receivers = shared ? shared->receivers : swarm_.size();
  std::vector<char> owned;
  if (shared) {
    owned.assign(receivers, 0);
    for (std::size_t i = 0; i < swarm_.size(); ++i) owned[swarm_.id(i)] = 1;
  }
  checker_ = std::make_unique<DeliveryChecker>(receivers, std::move(sender_clients), swarm_.dialect().echoes(),
                                               global_order, shared ? shared->sent : nullptr, std::move(owned));
  latency_ = LatencyHistogram{};
  same_swarm_latency_ = LatencyHistogram{};
  other_swarm_latency_ = LatencyHistogram{};
  kinds_[0] = ByKind{};
  kinds_[1] = ByKind{};
  to_others_ = 0;
  first_send_ = {};
  last_delivery_ = {};
}

void Traffic::queue_message(std::size_t sender) {
  const auto client = static_cast<std::size_t>(local_of_sender_[sender]);
  const auto now = Clock::now();
  if (first_send_ == Clock::time_point{}) first_send_ = now;
  Payload p;
  p.tag = tag_;
  p.sender = static_cast<std::uint32_t>(sender);
  p.seq = static_cast<std::uint32_t>(checker_->sent_by(sender));
  p.sent_us = now_us(now);
  scratch_.clear();
  encode_payload(scratch_, p, size_);
  if (swarm_.is_web(client)) {
    line_.clear();
    swarm_.dialect().encode_message(line_, scratch_);
    swarm_.queue(client, line_);  // as one masked text frame
  } else {
    swarm_.dialect().encode_message(swarm_.out(client), scratch_);
  }
  checker_->sent(sender);
}

void Traffic::send_message(std::size_t sender) {
  queue_message(sender);
  swarm_.flush(static_cast<std::size_t>(local_of_sender_[sender]));
}

void Traffic::on_frame(std::size_t client, const Seen& seen, Clock::time_point now) {
  if (seen.kind == Seen::Kind::stats) {
    if (want_stats_) stats_ = std::string(seen.text);
    return;
  }
  if (seen.kind == Seen::Kind::error) {
    if (want_stats_ && seen.text.find("STATS") != std::string_view::npos) {
      stats_ = "(no STATS: " + std::string(seen.text) + ")";
    } else {
      ++errors_;
      if (errors_ <= 3) error_lines_.emplace_back(seen.text);
    }
    return;
  }
  if (!checker_) return;  // before the first batch (the Asio example replays old messages)
  Payload p;
  switch (decode_payload(seen.payload, tag_, size_, p)) {
    case PayloadCheck::stale: ++stale_; return;
    case PayloadCheck::corrupt: checker_->corrupt(swarm_.id(client), std::string(seen.text)); return;
    case PayloadCheck::ok: break;
  }
  if (p.sender >= checker_->senders()) {
    checker_->corrupt(swarm_.id(client), std::string(seen.text));
    return;
  }
  const std::size_t receiver = swarm_.id(client);
  if (swarm_.dialect().names_senders() && seen.from != sender_nicks_[p.sender]) {
    checker_->corrupt(receiver, "attributed to " + std::string(seen.from) + ": " + std::string(seen.text));
    return;
  }
  if (!checker_->delivered(receiver, p.sender, p.seq)) return;
  if (receiver != checker_->sender_client(p.sender)) {
    const auto at = now_us(now);
    const auto us = at > p.sent_us ? at - p.sent_us : 0;
    latency_.add(us);
    (sends_here(p.sender) ? same_swarm_latency_ : other_swarm_latency_).add(us);
    ++to_others_;
    auto& kind = kinds_[swarm_.is_web(client) ? 1 : 0];
    kind.latency.add(us);
    ++kind.to_others;
    kind.last_delivery = now;
  }
  last_delivery_ = now;
}

std::string Traffic::fetch_stats(std::size_t i, Clock::time_point deadline) {
  const auto request = swarm_.dialect().stats_request();
  if (request.empty() || swarm_.client(i).state != Swarm::State::joined) return {};
  stats_.clear();
  want_stats_ = true;
  swarm_.send(i, request);
  swarm_.run_until([&] { return !stats_.empty() || swarm_.client(i).state == Swarm::State::ended; }, deadline);
  want_stats_ = false;
  return stats_.starts_with("STATS") ? stats_ : std::string();
}

std::string Traffic::problems() const {
  if (errors_ == 0) return {};
  std::string out = "the server refused " + std::to_string(errors_) + " lines:";
  for (const auto& line : error_lines_) out += " \"" + line + "\"";
  return out;
}

std::map<std::string, std::string> parse_stats(const std::string& line) {
  std::map<std::string, std::string> out;
  std::istringstream words(line);
  std::string word;
  words >> word;  // STATS
  while (words >> word) {
    const auto eq = word.find('=');
    if (eq != std::string::npos) out[word.substr(0, eq)] = word.substr(eq + 1);
  }
  return out;
}

}  // namespace chat::bench
