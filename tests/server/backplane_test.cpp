// The backplane (server/backplane.hpp) on its own: several Backplane instances in this process,
// one room, Debian's real redis-server started per case (tests/support/redis_process.hpp) and
// stopped, killed, paused or restarted by pid. What it must guarantee before a Room sits on it:
// one global order with contiguous ids, nickname claims that only one instance wins, exactly
// one instance-lost LEAVE per member of a dead instance however many survivors there are, and
// nothing published lost across a Redis restart (or said, when the buffer overflows).
#include "server/backplane.hpp"
#include "tests/support/deadline.hpp"
#include "tests/support/redis_process.hpp"
#include "tests/support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using namespace std::string_literals;
using chat::Backplane;
using chat::BackplaneOptions;
using chat::Event;
using chat::StreamEvent;
using chat::test::eventually;
using chat::test::RedisProcess;
using chat::test::TempDir;

namespace {


// One instance and what its callbacks saw.
struct Instance {
  std::mutex mutex;
  std::vector<StreamEvent> events;           // guarded by mutex
  std::vector<std::pair<bool, std::string>> links;  // guarded by mutex
  std::atomic<int> forgotten{0};
  std::unique_ptr<Backplane> backplane;

  Instance(const std::string& url, const std::string& name, chat::Millis timeout = chat::Millis(1500),
           std::size_t buffer_max = 10'000) {
    BackplaneOptions o;
    o.url = chat::parse_redis_url(url);
    o.room = "test";
    o.instance = name;
    o.label = name + ".lan:15600";
    o.instance_timeout = timeout;
    o.connect_timeout = chat::Millis(1000);
    o.buffer_max = buffer_max;
    Backplane::Callbacks cb;
    cb.events = [this](std::vector<StreamEvent> got) {
      std::lock_guard lock(mutex);
      for (auto& e : got) events.push_back(std::move(e));
    };
    cb.link = [this](bool whole, std::string detail) {
      std::lock_guard lock(mutex);
      links.emplace_back(whole, std::move(detail));
    };
    cb.forgotten = [this] { ++forgotten; };
    backplane = std::make_unique<Backplane>(std::move(o), std::move(cb));
    backplane->start();
  }
  std::size_t count() {
    std::lock_guard lock(mutex);
    return events.size();
  }
  std::vector<StreamEvent> seen() {
    std::lock_guard lock(mutex);
    return events;
  }
  std::vector<std::pair<bool, std::string>> link_changes() {
    std::lock_guard lock(mutex);
    return links;
  }
  bool linked() const { return backplane->stats().linked; }
};

Event msg(const std::string& nick, const std::string& text) { return Event{Event::Kind::msg, nick, {}, {}, text, {}}; }
Event join(const std::string& nick) { return Event{Event::Kind::join, nick, {}, {}, {}, {}}; }

}  // namespace

TEST_CASE("backplane: three instances publishing at once see every event once, in one order, with contiguous ids",
          "[backplane]") {
  REQUIRE(RedisProcess::available());  // the README's test command installs redis-server
  TempDir dir("chat_backplane");
  RedisProcess redis(dir.path());
  std::vector<std::unique_ptr<Instance>> instances;
  for (const char* name : {"a", "b", "c"}) instances.push_back(std::make_unique<Instance>(redis.unix_url(), name));
  for (auto& i : instances) REQUIRE(eventually([&] { return i->linked(); }, 5s));

  constexpr int per_instance = 300;
  std::vector<std::thread> senders;
  for (std::size_t n = 0; n < instances.size(); ++n) {
    senders.emplace_back([&, n] {
      for (int k = 0; k < per_instance; ++k) {
        instances[n]->backplane->publish(msg("user" + std::to_string(n), std::to_string(k) + " \r\n\0 binary"s));
      }
    });
  }
  for (auto& t : senders) t.join();
  const std::size_t total = per_instance * instances.size();
  for (auto& i : instances) REQUIRE(eventually([&] { return i->count() >= total; }, 20s));

  const auto reference = instances[0]->seen();
  REQUIRE(reference.size() == total);
  std::map<std::string, int> next_from;  // each origin's events arrive in the order it published them
  for (std::size_t k = 0; k < reference.size(); ++k) {
    const auto& e = reference[k];
    if (k > 0) CHECK(e.id == reference[k - 1].id + 1);  // contiguous
    CHECK(e.event.kind == Event::Kind::msg);
    const int expected = next_from[e.origin]++;
    CHECK(e.event.text == std::to_string(expected) + " \r\n\0 binary"s);
  }
  for (auto& i : instances) {
    const auto other = i->seen();
    REQUIRE(other.size() == total);
    for (std::size_t k = 0; k < total; ++k) {
      CHECK(other[k].id == reference[k].id);
      CHECK(other[k].origin == reference[k].origin);
      CHECK(other[k].serial == reference[k].serial);
    }
    CHECK(i->backplane->stats().gaps == 0);
  }
}

TEST_CASE("backplane: a nickname raced for by three instances is won by exactly one, whatever its case",
          "[backplane]") {
  REQUIRE(RedisProcess::available());
  TempDir dir("chat_backplane");
  RedisProcess redis(dir.path());
  std::vector<std::unique_ptr<Instance>> instances;
  for (const char* name : {"a", "b", "c"}) instances.push_back(std::make_unique<Instance>(redis.unix_url(), name));
  for (auto& i : instances) REQUIRE(eventually([&] { return i->linked(); }, 5s));

  for (int round = 0; round < 20; ++round) {
    const std::string nick = "racer" + std::to_string(round);
    std::vector<Backplane::Result> results(instances.size());
    std::vector<std::thread> racers;
    for (std::size_t n = 0; n < instances.size(); ++n) {
      racers.emplace_back([&, n] {
        std::string spelled = nick;
        if (n == 1) spelled[0] = 'R';  // "Racer3" is the same nickname
        results[n] = instances[n]->backplane->publish_and_wait(join(spelled), Backplane::Claim::take, 5000ms);
      });
    }
    for (auto& t : racers) t.join();
    int won = 0;
    int taken = 0;
    for (const auto& r : results) {
      won += r.outcome == Backplane::Outcome::published;
      taken += r.outcome == Backplane::Outcome::taken;
    }
    CHECK(won == 1);
    CHECK(taken == 2);
  }
  // Only the winners' JOINs are in the stream: a marker published after the races comes after
  // all of them (one order), so once it is seen, nothing else can still arrive before it.
  REQUIRE(instances[0]->backplane->publish(msg("referee", "marker")));
  REQUIRE(eventually([&] { return instances[0]->count() >= 21; }, 5s));
  CHECK(instances[0]->seen()[20].event.text == "marker");

  // A rename onto a claimed nickname is refused; onto a free one it moves the claim.
  auto& a = *instances[0]->backplane;
  auto& b = *instances[1]->backplane;
  REQUIRE(a.publish_and_wait(join("anna"), Backplane::Claim::take, 5000ms).outcome == Backplane::Outcome::published);
  REQUIRE(b.publish_and_wait(join("bert"), Backplane::Claim::take, 5000ms).outcome == Backplane::Outcome::published);
  Event rename{Event::Kind::nick, "bert", "ANNA", {}, {}, {}};
  CHECK(b.publish_and_wait(rename, Backplane::Claim::rename, 5000ms).outcome == Backplane::Outcome::taken);
  rename.arg = "bertie";
  CHECK(b.publish_and_wait(rename, Backplane::Claim::rename, 5000ms).outcome == Backplane::Outcome::published);
  CHECK(a.publish_and_wait(join("bert"), Backplane::Claim::take, 5000ms).outcome == Backplane::Outcome::published);
  // A LEAVE releases it.
  Event leave{Event::Kind::leave, "anna", {}, "quit", "bye", {}};
  CHECK(a.publish_and_wait(leave, Backplane::Claim::release, 5000ms).outcome == Backplane::Outcome::published);
  CHECK(b.publish_and_wait(join("Anna"), Backplane::Claim::take, 5000ms).outcome == Backplane::Outcome::published);
}

TEST_CASE("backplane: a killed instance's members each get exactly one instance-lost LEAVE, at every survivor, "
          "within the timeout",
          "[backplane]") {
  REQUIRE(RedisProcess::available());
  TempDir dir("chat_backplane");
  RedisProcess redis(dir.path());
  const chat::Millis timeout(1500);
  std::vector<std::unique_ptr<Instance>> instances;
  for (const char* name : {"a", "b", "c", "victim"}) {
    instances.push_back(std::make_unique<Instance>(redis.unix_url(), name, timeout));
  }
  for (auto& i : instances) REQUIRE(eventually([&] { return i->linked(); }, 5s));
  auto& victim = *instances[3];
  for (const char* nick : {"v1", "v2", "Vee3"}) {
    REQUIRE(victim.backplane->publish_and_wait(join(nick), Backplane::Claim::take, 5000ms).outcome ==
            Backplane::Outcome::published);
  }
  REQUIRE(instances[0]->backplane->publish_and_wait(join("alive"), Backplane::Claim::take, 5000ms).outcome ==
          Backplane::Outcome::published);
  for (std::size_t n = 0; n < 3; ++n) REQUIRE(eventually([&] { return instances[n]->count() == 4; }, 5s));

  const auto killed = std::chrono::steady_clock::now();
  victim.backplane->crash();  // no goodbye: its heartbeat key just expires
  auto lost_leaves = [](Instance& i) {
    std::multiset<std::string> nicks;
    for (const auto& e : i.seen()) {
      if (e.event.kind == Event::Kind::leave && e.event.code == "instance-lost") nicks.insert(e.event.nick);
    }
    return nicks;
  };
  for (std::size_t n = 0; n < 3; ++n) {
    REQUIRE(eventually([&] { return lost_leaves(*instances[n]).size() >= 3; }, 10s));
  }
  const auto noticed = std::chrono::steady_clock::now() - killed;
  std::this_thread::sleep_for(timeout);  // room for a second, wrong, round of LEAVEs
  std::uint64_t reaped = 0;
  for (std::size_t n = 0; n < 3; ++n) {
    CHECK(lost_leaves(*instances[n]) == std::multiset<std::string>{"Vee3", "v1", "v2"});
    reaped += instances[n]->backplane->stats().reaped;
    for (const auto& e : instances[n]->seen()) {
      if (e.event.code == "instance-lost") {
        CHECK_THAT(e.event.text, Catch::Contains("server victim.lan:15600 stopped answering"));
      }
    }
  }
  CHECK(reaped == 1);  // one survivor did it; the others found nothing left
  CHECK(noticed < timeout + 2000ms);  // generous: the figure is measured by chatbench, not here
  // Their nicknames are free again; the living one's is not.
  auto& a = *instances[0]->backplane;
  CHECK(a.publish_and_wait(join("v1"), Backplane::Claim::take, 5000ms).outcome == Backplane::Outcome::published);
  CHECK(instances[1]->backplane->publish_and_wait(join("alive"), Backplane::Claim::take, 5000ms).outcome ==
        Backplane::Outcome::taken);
}

TEST_CASE("backplane: Redis restarted empty: split, then whole, nothing published lost, ids keep growing",
          "[backplane]") {
  REQUIRE(RedisProcess::available());
  TempDir dir("chat_backplane");
  RedisProcess redis(dir.path());
  Instance a(redis.unix_url(), "a");
  Instance b(redis.unix_url(), "b");
  REQUIRE(eventually([&] { return a.linked() && b.linked(); }, 5s));
  for (int k = 0; k < 10; ++k) a.backplane->publish(msg("ann", "before " + std::to_string(k)));
  REQUIRE(eventually([&] { return b.count() == 10; }, 5s));
  const auto last_before = b.seen().back().id;

  redis.stop();
  REQUIRE(eventually([&] { return !a.linked(); }, 5s));
  {
    const auto links = a.link_changes();
    REQUIRE_FALSE(links.empty());
    CHECK_FALSE(links.back().first);  // split, with why
    CHECK_FALSE(links.back().second.empty());
  }
  // Said during the split: kept, and a claim cannot be answered.
  for (int k = 0; k < 50; ++k) CHECK(a.backplane->publish(msg("ann", "during " + std::to_string(k))));
  CHECK(a.backplane->publish_and_wait(join("newbie"), Backplane::Claim::take, 500ms).outcome ==
        Backplane::Outcome::unavailable);

  redis.start();  // empty: no stream, no counter, no instances
  REQUIRE(eventually([&] { return a.linked() && b.linked(); }, 10s));
  REQUIRE(eventually([&] { return b.count() == 60; }, 10s));
  const auto seen = b.seen();
  for (int k = 0; k < 50; ++k) {
    const auto& e = seen[10 + static_cast<std::size_t>(k)];
    CHECK(e.event.text == "during " + std::to_string(k));
    CHECK(e.id > last_before);  // above every id handed out before the restart
  }
  CHECK(a.link_changes().back() == std::pair<bool, std::string>{true, ""});
  CHECK(a.forgotten >= 1);  // Redis forgot both instances: the Room must announce its members again
  CHECK(a.backplane->stats().lost == 0);
}

TEST_CASE("backplane: more than the buffer during a split is counted and said when whole again", "[backplane]") {
  REQUIRE(RedisProcess::available());
  TempDir dir("chat_backplane");
  RedisProcess redis(dir.path());
  Instance a(redis.unix_url(), "a", chat::Millis(1500), 10);
  Instance b(redis.unix_url(), "b");
  REQUIRE(eventually([&] { return a.linked() && b.linked(); }, 5s));
  redis.stop();
  REQUIRE(eventually([&] { return !a.linked(); }, 5s));
  int kept = 0;
  for (int k = 0; k < 15; ++k) kept += a.backplane->publish(msg("ann", std::to_string(k)));
  CHECK(kept == 10);
  CHECK(a.backplane->stats().lost == 5);
  redis.start();
  REQUIRE(eventually([&] { return a.linked(); }, 10s));
  CHECK(a.link_changes().back().first);
  CHECK_THAT(a.link_changes().back().second, Catch::Contains("5 events said during the split were not kept"));
  REQUIRE(eventually([&] { return b.count() == 10; }, 10s));
  CHECK(b.seen().front().event.text == "0");
  CHECK(b.seen().back().event.text == "9");
}

TEST_CASE("backplane: a Redis that stops answering with its socket open is a split after the connect timeout",
          "[backplane]") {
  REQUIRE(RedisProcess::available());
  TempDir dir("chat_backplane");
  RedisProcess redis(dir.path());
  Instance a(redis.unix_url(), "a");
  REQUIRE(eventually([&] { return a.linked(); }, 5s));
  redis.pause();
  const auto paused = std::chrono::steady_clock::now();
  REQUIRE(eventually([&] { return !a.linked(); }, 10s));
  CHECK(std::chrono::steady_clock::now() - paused < 5s);
  CHECK_THAT(a.link_changes().back().second, Catch::Contains("no answer within"));
  a.backplane->publish(msg("ann", "while paused"));
  redis.resume();
  REQUIRE(eventually([&] { return a.linked(); }, 10s));
  REQUIRE(eventually([&] { return a.count() >= 1; }, 10s));
  CHECK(a.seen().back().event.text == "while paused");
}
