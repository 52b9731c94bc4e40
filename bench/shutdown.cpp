#include "bench/shutdown.hpp"

#include "bench/child_process.hpp"
#include "bench/line_conn.hpp"
#include "common/protocol.hpp"

#include <algorithm>
#include <csignal>
#include <stdexcept>
#include <vector>

namespace chat::bench {
namespace {

using namespace std::chrono_literals;

constexpr auto join_patience = 60s;
constexpr auto shutdown_patience = 15s;
constexpr int spare_descriptors = 64;  // pipes, pidfds, stdio

std::vector<LineConn*> pointers(std::vector<LineConn>& conns) {
  std::vector<LineConn*> out;
  out.reserve(conns.size());
  for (auto& c : conns) out.push_back(&c);
  return out;
}

}  // namespace

bool ShutdownResult::ok() const {
  return error.empty() && joined == clients && exit_ms && exit_code == 0 && bye == clients;
}

bool ShutdownResult::met_target() const {
  return ok() && *exit_ms <= 2000 && all_bye_ms && *all_bye_ms <= 2000;
}

ShutdownResult run_shutdown(const ShutdownOptions& options, std::ostream& progress) {
  ShutdownResult r;
  r.clients = options.clients;
  const long limit = raise_file_limit();
  if (r.clients + spare_descriptors > limit) {
    r.note = "RLIMIT_NOFILE is " + std::to_string(limit) + ": clients capped";
    r.clients = static_cast<int>(limit) - spare_descriptors;
  }

  // --log-level warn: at info the server logs two lines per client; the point here is to time
  // the shutdown, not the logging.
  ServerProcess server(options.server_path,
                       {"--log-level", "warn", "--max-clients", std::to_string(std::max(r.clients, 1000))});
  progress << "shutdown: joining " << r.clients << " clients ..." << std::flush;
  const auto join_start = Clock::now();
  std::vector<LineConn> conns;
  try {
    conns = join_many(server.port(), "b", r.clients, join_start + join_patience);
    r.joined = r.clients;
  } catch (const Interrupted&) {
    throw;
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  r.join_ms = millis_between(join_start, Clock::now());
  progress << " " << r.joined << " joined in " << format_ms(r.join_ms) << " ms\n";
  if (!r.error.empty()) {
    server.stop();
    return r;
  }

  progress << "shutdown: SIGTERM to chatserver (pid " << server.pid() << ")\n";
  std::vector<std::optional<double>> bye_at(conns.size());
  std::vector<bool> done(conns.size(), false);
  std::size_t remaining = conns.size();
  auto all = pointers(conns);
  ChildProcess& process = server.process();
  const auto sigterm_at = Clock::now();
  process.signal(SIGTERM);
  const auto deadline = sigterm_at + shutdown_patience;
  while ((remaining > 0 || !r.exit_ms) && Clock::now() < deadline) {
    pollfd exited{process.pidfd(), POLLIN, 0};
    const bool watch_pid = !r.exit_ms && process.pidfd() >= 0;
    pump(all, deadline, watch_pid ? std::span<pollfd>(&exited, 1) : std::span<pollfd>());
    const auto now = Clock::now();
    if (!r.exit_ms && (process.pidfd() < 0 || exited.revents != 0) && process.try_reap()) {
      r.exit_ms = millis_between(sigterm_at, now);
      r.exit_code = process.exit_code();
    }
    for (std::size_t i = 0; i < conns.size(); ++i) {
      if (done[i]) continue;
      while (auto line = conns[i].next_line()) {
        if (!line->starts_with("BYE")) continue;  // JOINs still on their way, a last PING
        if (line->starts_with("BYE shutdown")) {
          bye_at[i] = millis_between(sigterm_at, now);
          ++r.bye;
        } else {
          ++r.other_bye;
        }
        done[i] = true;
        --remaining;
        break;
      }
      if (!done[i] && !conns[i].live()) {
        ++r.closed_without_bye;
        done[i] = true;
        --remaining;
      }
    }
  }
  if (!r.exit_ms) {
    r.error = "chatserver still running " + format_ms(millis_between(sigterm_at, Clock::now())) + " ms after SIGTERM";
    server.stop(0s);
  }
  if (remaining > 0) {
    if (!r.error.empty()) r.error += "; ";
    r.error += std::to_string(remaining) + " clients neither read BYE nor saw the connection end";
  }
  std::vector<double> byes;
  for (const auto& b : bye_at) {
    if (b) byes.push_back(*b);
  }
  r.bye_ms = summarize(byes);
  if (r.bye == r.clients && r.clients > 0) r.all_bye_ms = r.bye_ms.max;
  return r;
}

void print_shutdown(const ShutdownResult& r, std::ostream& out) {
  out << "Shutdown: " << r.clients << " joined clients, SIGTERM to chatserver (--log-level warn)\n\n";
  Table table({{"measure", false}, {"result", true}, {"", false}});
  table.add_row({"clients joined", std::to_string(r.joined) + " / " + std::to_string(r.clients),
                 "in " + format_ms(r.join_ms) + " ms"});
  table.add_row({"SIGTERM -> process exited", r.exit_ms ? format_ms(*r.exit_ms) + " ms" : "not in time",
                 r.exit_code ? "exit status " + std::to_string(*r.exit_code) : ""});
  table.add_row({"SIGTERM -> every client read BYE shutdown", r.all_bye_ms ? format_ms(*r.all_bye_ms) + " ms" : "no",
                 std::to_string(r.bye) + " read it"});
  if (r.bye_ms.count > 0) {
    table.add_row({"  BYE read by a client: min / median / max",
                   format_ms(r.bye_ms.min) + " / " + format_ms(r.bye_ms.median) + " / " + format_ms(r.bye_ms.max) +
                       " ms",
                   ""});
  }
  if (r.closed_without_bye > 0 || r.other_bye > 0) {
    table.add_row({"connection ended without BYE shutdown", std::to_string(r.closed_without_bye + r.other_bye), ""});
  }
  table.print(out);
  const auto n = static_cast<double>(r.joined);
  out << "(joining: the server sends every JOIN to everyone already in, " << format_count(n * (n - 1) / 2)
      << " JOIN lines in all)\n";
  if (r.clients == 1000) {
    out << "\nTarget (both within 2 s for 1000 clients): " << (r.met_target() ? "met" : "NOT met") << "\n";
  } else {
    out << "\nBoth within 2 s (the target for 1000 clients; this run had " << r.clients
        << "): " << (r.met_target() ? "yes" : "no") << "\n";
  }
  if (!r.note.empty()) out << "note: " << r.note << "\n";
  if (!r.error.empty()) out << "FAILED: " << r.error << "\n";
}

void json_shutdown(const ShutdownResult& r, Json& json) {
  json.begin_object("shutdown");
  json.field("clients", r.clients);
  json.field("joined", r.joined);
  json.field("join_ms", r.join_ms);
  if (r.exit_ms) json.field("exit_ms", *r.exit_ms);
  if (r.exit_code) json.field("exit_code", *r.exit_code);
  json.field("bye_shutdown", r.bye);
  json.field("closed_without_bye", r.closed_without_bye);
  json.field("other_bye", r.other_bye);
  if (r.all_bye_ms) json.field("all_bye_ms", *r.all_bye_ms);
  json.summary("bye_ms", r.bye_ms);
  json.field("ok", r.ok());
  json.field("target_met", r.met_target());
  if (!r.note.empty()) json.field("note", r.note);
  if (!r.error.empty()) json.field("error", r.error);
  json.end_object();
}

}  // namespace chat::bench
