// chatbench's DeliveryChecker and LatencyHistogram (bench/checker.hpp), fed by hand: every kind
// of problem the checker must name (loss, duplicate, per-sender reordering, a differing global
// order, an echo from a server that does not echo, corruption, losses to a gone receiver), a
// clean run's counts, copies_of(), and the histogram's exact range, percentile error bound, max
// and empty case.
//
// Threads: none but the test thread (the checker is not thread safe; nor does it need to be).
#include "bench/checker.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

using chat::bench::DeliveryChecker;
using chat::bench::LatencyHistogram;

namespace {

// True if some example line contains every one of `words`.
bool some_example_says(const DeliveryChecker::Report& r, std::initializer_list<std::string> words) {
  return std::any_of(r.examples.begin(), r.examples.end(), [&](const std::string& e) {
    return std::all_of(words.begin(), words.end(), [&](const std::string& w) { return e.find(w) != std::string::npos; });
  });
}

std::string all_examples(const DeliveryChecker::Report& r) {
  std::string text;
  for (const auto& e : r.examples) text += e + "\n";
  return text;
}

// 3 receivers (clients 0, 1, 2), senders 0 and 1 are clients 0 and 1, echo on, global order on;
// each sender sends `per_sender` messages.
DeliveryChecker three_by_two(std::uint32_t per_sender) {
  DeliveryChecker c(3, {0, 1}, true, true);
  for (std::uint32_t i = 0; i < per_sender; ++i) {
    c.sent(0);
    c.sent(1);
  }
  return c;
}

}  // namespace

TEST_CASE("checker: a clean run is ok, with the right counts", "[bench][checker]") {
  auto c = three_by_two(3);
  CHECK(c.senders() == 2);
  CHECK(c.sender_client(1) == 1);
  CHECK(c.sent_by(0) == 3);
  CHECK(c.sent_total() == 6);
  // Every receiver gets the same interleaving: A0 B0 A1 B1 A2 B2.
  for (std::size_t rx = 0; rx < 3; ++rx) {
    for (std::uint32_t seq = 0; seq < 3; ++seq) {
      CHECK(c.delivered(rx, 0, seq));
      CHECK(c.delivered(rx, 1, seq));
    }
  }
  CHECK(c.deliveries() == 18);
  const auto r = c.report();
  INFO(all_examples(r));
  CHECK(r.ok());
  CHECK(r.expected == 18);   // 6 messages x 3 receivers, echoes included
  CHECK(r.delivered == 18);
  CHECK(r.to_others == 12);  // each message to the 2 clients other than its sender
  CHECK(r.lost == 0);
  CHECK(r.lost_to_gone == 0);
  CHECK(r.duplicates == 0);
  CHECK(r.reordered == 0);
  CHECK(r.corrupt == 0);
  CHECK(r.order_checked);
  CHECK(r.order_violations == 0);
  CHECK(r.examples.empty());
}

TEST_CASE("checker: one loss, one duplicate and one reordering, each named", "[bench][checker]") {
  auto c = three_by_two(3);
  // Receiver 0: sender 0's message 2 arrives before its message 1.
  for (auto [tx, seq] : std::vector<std::pair<std::size_t, std::uint32_t>>{{0, 0}, {1, 0}, {0, 2}, {1, 1}, {0, 1}, {1, 2}}) {
    c.delivered(0, tx, seq);
  }
  // Receiver 1: sender 1's message 0 arrives twice.
  for (auto [tx, seq] : std::vector<std::pair<std::size_t, std::uint32_t>>{{0, 0}, {1, 0}, {0, 1}, {1, 1}, {0, 2}, {1, 2}}) {
    CHECK(c.delivered(1, tx, seq));
  }
  CHECK_FALSE(c.delivered(1, 1, 0));  // the duplicate is not a first delivery
  // Receiver 2: never gets sender 0's message 1.
  for (auto [tx, seq] : std::vector<std::pair<std::size_t, std::uint32_t>>{{0, 0}, {1, 0}, {1, 1}, {0, 2}, {1, 2}}) {
    CHECK(c.delivered(2, tx, seq));
  }

  const auto r = c.report();
  INFO(all_examples(r));
  CHECK_FALSE(r.ok());
  CHECK(r.expected == 18);
  CHECK(r.delivered == 17);
  CHECK(r.lost == 1);
  CHECK(r.lost_to_gone == 0);
  CHECK(r.duplicates == 1);
  CHECK(r.reordered == 1);
  CHECK(r.corrupt == 0);
  CHECK(some_example_says(r, {"client 2 missed 1", "sender 0"}));
  CHECK(some_example_says(r, {"client 1", "twice"}));
  CHECK(some_example_says(r, {"client 0", "message 1 of sender 0", "after message 2"}));
  // report() is repeatable.
  const auto again = c.report();
  CHECK(again.lost == r.lost);
  CHECK(again.duplicates == r.duplicates);
  CHECK(again.examples == r.examples);
}

TEST_CASE("checker: different interleavings break the global order, not the senders' order", "[bench][checker]") {
  DeliveryChecker c(2, {0, 1}, true, true);
  for (int i = 0; i < 2; ++i) {
    c.sent(0);
    c.sent(1);
  }
  // Receiver 0: A0 B0 A1 B1. Receiver 1: B0 A0 B1 A1. Each sender's own order is intact.
  c.delivered(0, 0, 0);
  c.delivered(0, 1, 0);
  c.delivered(0, 0, 1);
  c.delivered(0, 1, 1);
  c.delivered(1, 1, 0);
  c.delivered(1, 0, 0);
  c.delivered(1, 1, 1);
  c.delivered(1, 0, 1);
  const auto r = c.report();
  INFO(all_examples(r));
  CHECK(r.order_checked);
  CHECK(r.order_violations >= 1);
  CHECK(r.reordered == 0);
  CHECK(r.lost == 0);
  CHECK(r.duplicates == 0);
  CHECK_FALSE(r.ok());
  CHECK(some_example_says(r, {"global order"}));

  // Without the global-order check the same deliveries are fine.
  DeliveryChecker unordered(2, {0, 1}, true, false);
  for (int i = 0; i < 2; ++i) {
    unordered.sent(0);
    unordered.sent(1);
  }
  unordered.delivered(0, 0, 0);
  unordered.delivered(0, 1, 0);
  unordered.delivered(0, 0, 1);
  unordered.delivered(0, 1, 1);
  unordered.delivered(1, 1, 0);
  unordered.delivered(1, 0, 0);
  unordered.delivered(1, 1, 1);
  unordered.delivered(1, 0, 1);
  const auto u = unordered.report();
  CHECK_FALSE(u.order_checked);
  CHECK(u.ok());
}

TEST_CASE("checker: without echo, a sender's own message coming back is corrupt", "[bench][checker]") {
  DeliveryChecker c(3, {0}, false, false);
  c.sent(0);
  CHECK(c.delivered(1, 0, 0));
  CHECK(c.delivered(2, 0, 0));
  auto clean = c.report();
  CHECK(clean.ok());
  CHECK(clean.expected == 2);  // the sender itself expects nothing
  CHECK(clean.to_others == 2);

  CHECK_FALSE(c.delivered(0, 0, 0));
  const auto r = c.report();
  INFO(all_examples(r));
  CHECK(r.corrupt == 1);
  CHECK_FALSE(r.ok());
  CHECK(r.delivered == 2);
  CHECK(some_example_says(r, {"client 0", "its own", "does not echo"}));
}

TEST_CASE("checker: losses to a receiver that is gone are counted as such", "[bench][checker]") {
  auto c = three_by_two(2);
  for (std::size_t rx = 0; rx < 2; ++rx) {
    for (std::uint32_t seq = 0; seq < 2; ++seq) {
      c.delivered(rx, 0, seq);
      c.delivered(rx, 1, seq);
    }
  }
  c.delivered(2, 0, 0);  // then client 2's connection ended
  c.receiver_gone(2);
  const auto r = c.report();
  INFO(all_examples(r));
  CHECK(r.lost == 3);
  CHECK(r.lost_to_gone == 3);
  CHECK_FALSE(r.ok());
  CHECK(some_example_says(r, {"client 2", "connection had ended"}));
}

TEST_CASE("checker: frames that are not ours, and messages never sent, are corrupt", "[bench][checker]") {
  DeliveryChecker c(2, {0}, true, true);
  c.sent(0);
  c.corrupt(1, "garbage");
  CHECK_FALSE(c.delivered(1, 0, 5));  // seq 5 was never sent
  CHECK_FALSE(c.delivered(1, 3, 0));  // there is no sender 3
  CHECK_FALSE(c.delivered(7, 0, 0));  // there is no receiver 7
  CHECK(c.delivered(0, 0, 0));
  CHECK(c.delivered(1, 0, 0));
  const auto r = c.report();
  INFO(all_examples(r));
  CHECK(r.corrupt == 4);
  CHECK(r.lost == 0);
  CHECK(r.delivered == 2);
  CHECK_FALSE(r.ok());
  CHECK(some_example_says(r, {"client 1", "corrupted", "garbage"}));
  CHECK(some_example_says(r, {"never sent"}));
}

TEST_CASE("checker: copies_of counts distinct deliveries per message", "[bench][checker]") {
  DeliveryChecker c(3, {0, 2}, true, false);
  c.track_copies();  // only --window needs it
  c.sent(0);
  c.sent(0);
  c.sent(1);
  CHECK(c.copies_of(0, 0) == 0);
  c.delivered(0, 0, 0);
  c.delivered(1, 0, 0);
  c.delivered(1, 0, 0);  // a duplicate is not another copy
  c.delivered(2, 0, 1);
  c.delivered(2, 1, 0);
  CHECK(c.copies_of(0, 0) == 2);
  CHECK(c.copies_of(0, 1) == 1);
  CHECK(c.copies_of(1, 0) == 1);
  CHECK(c.copies_of(0, 2) == 0);    // not sent
  CHECK(c.copies_of(1, 1000) == 0); // far beyond anything recorded
}

TEST_CASE("latency histogram: exact below 1024 us", "[bench][checker]") {
  LatencyHistogram h;
  for (std::uint64_t us = 1; us <= 1000; ++us) h.add(us);
  CHECK(h.count() == 1000);
  CHECK(h.percentile_ms(50) == Approx(0.5).margin(1e-12));
  CHECK(h.percentile_ms(99) == Approx(0.99).margin(1e-12));
  CHECK(h.percentile_ms(0.1) == Approx(0.001).margin(1e-12));
  CHECK(h.min_ms() == Approx(0.001).margin(1e-12));
  CHECK(h.max_ms() == Approx(1.0).margin(1e-12));

  LatencyHistogram one;
  one.add(1023);
  CHECK(one.percentile_ms(50) == Approx(1.023).margin(1e-12));
}

TEST_CASE("latency histogram: percentiles of 1..10000 us within 1.6%, max exact", "[bench][checker]") {
  LatencyHistogram h;
  for (std::uint64_t us = 1; us <= 10000; ++us) h.add(us);
  CHECK(h.count() == 10000);
  for (double p : {1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 100.0}) {
    const double truth_ms = p / 100.0 * 10000 / 1000.0;  // the p-th percentile of 1..10000 us
    const double got = h.percentile_ms(p);
    INFO("p" << p << ": " << got << " ms, true " << truth_ms << " ms");
    CHECK(std::abs(got - truth_ms) <= 0.016 * truth_ms);
    CHECK(got <= h.max_ms());
  }
  CHECK(h.max_ms() == Approx(10.0).margin(1e-12));
  CHECK(h.min_ms() == Approx(0.001).margin(1e-12));
  CHECK(h.percentile_ms(100) == Approx(10.0).margin(1e-12));

  // A single large sample: its bucket's upper bound is capped at the exact max.
  LatencyHistogram big;
  big.add(123'456'789);
  CHECK(big.max_ms() == Approx(123456.789).margin(1e-6));
  CHECK(big.percentile_ms(50) == Approx(123456.789).margin(1e-6));
}

TEST_CASE("latency histogram: empty gives 0", "[bench][checker]") {
  LatencyHistogram h;
  CHECK(h.count() == 0);
  CHECK(h.percentile_ms(50) == 0);
  CHECK(h.percentile_ms(99) == 0);
  CHECK(h.max_ms() == 0);
  CHECK(h.min_ms() == 0);
}
