#include "lab/network.hpp"

#include "bench/child_process.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstdio>
#include <iostream>
#include <optional>
#include <system_error>

namespace chat::lab {

std::string find_program(const std::string& name) {
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH")) {
    std::string p = path;
    for (std::size_t start = 0; start <= p.size();) {
      const auto colon = std::min(p.find(':', start), p.size());
      if (colon > start) dirs.push_back(p.substr(start, colon - start));
      start = colon + 1;
    }
  }
  for (const char* dir : {"/usr/sbin", "/sbin", "/usr/bin", "/bin"}) dirs.emplace_back(dir);
  for (const auto& dir : dirs) {
    const std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

const std::string& ip_path() {
  static const std::string path = find_program("ip");
  return path;
}

namespace {

std::string join(const std::vector<std::string>& args) {
  std::string text = "ip";
  for (const auto& a : args) text += " " + a;
  return text;
}

// Runs `ip args...`; throws std::runtime_error (with the command and what it said) on failure.
void ip_or_throw(const std::vector<std::string>& args) {
  const auto result = run_ip(args);
  if (result.exit_code != 0) {
    throw std::runtime_error("`" + join(args) + "` failed (exit " + std::to_string(result.exit_code) +
                             "): " + result.output);
  }
}

// Distinguishes the LabNetworks of one process; part of every namespace name.
std::atomic<int> next_sequence{1};

}  // namespace

CommandResult run_ip(const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  if (ip_path().empty()) throw std::runtime_error("no `ip` program (iproute2) found");
  std::vector<std::string> argv{ip_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  using bench::ChildProcess;
  ChildProcess ip(std::move(argv), ChildProcess::Output::pipe, ChildProcess::Output::pipe);
  ip.close_stdin();
  // `ip` writes a line or two at most, far below a pipe's 64 KiB, so it never blocks on output
  // while we wait for its exit; what it wrote is still in the pipes afterwards.
  const auto code = ip.wait_exit(bench::Clock::now() + timeout);
  if (!code) throw std::runtime_error("`" + join(args) + "` did not finish in time");
  CommandResult result;
  result.exit_code = *code;
  for (auto* pipe : {&ip.err(), &ip.out()}) {
    while (auto line = pipe->read_line(bench::Clock::now())) {
      if (!result.output.empty()) result.output += "; ";
      result.output += *line;
    }
  }
  return result;
}

// ---- NetNamespace ---------------------------------------------------------------------------

NetNamespace::NetNamespace(std::string name) : name_(std::move(name)) { ip_or_throw({"netns", "add", name_}); }

NetNamespace::~NetNamespace() {
  // Never throws: this runs while a failed test unwinds. A namespace that cannot be deleted is
  // reported, so that a leak is seen.
  try {
    const auto result = run_ip({"netns", "del", name_});
    if (result.exit_code != 0) {
      std::cerr << "could not delete network namespace " << name_ << ": " << result.output << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "could not delete network namespace " << name_ << ": " << e.what() << "\n";
  }
}

// ---- LabNetwork ----------------------------------------------------------------------------

LabNetwork::LabNetwork()
    : sequence_(next_sequence.fetch_add(1)),
      prefix_("chat" + std::to_string(::getpid()) + "-" + std::to_string(sequence_)),
      // One /24 per LabNetwork of this process. They are in separate namespaces and never
      // overlap in time anyway; a distinct subnet makes each test's addresses recognisable.
      subnet_((sequence_ - 1) % 250 + 1),
      bridge_("b" + std::to_string(::getpid())) {
  if (::geteuid() != 0) {
    throw NetworkUnavailable("needs root to create network namespaces and veth pairs (effective uid " +
                             std::to_string(::geteuid()) + ")");
  }
  if (ip_path().empty()) {
    throw NetworkUnavailable("no `ip` program (iproute2) on PATH or in /usr/sbin, /sbin");
  }
  try {
    const auto version = run_ip({"-V"});
    if (version.exit_code != 0) {
      throw NetworkUnavailable("`" + ip_path() + " -V` failed (exit " + std::to_string(version.exit_code) +
                               "): " + version.output);
    }
  } catch (const std::system_error& e) {  // posix_spawn failed
    throw NetworkUnavailable("cannot run " + ip_path() + ": " + e.what());
  }
  try {
    switch_ns_ = std::make_unique<NetNamespace>(prefix_ + "-switch");
  } catch (const std::runtime_error& e) {
    throw NetworkUnavailable(e.what());  // e.g. no permission to mount /run/netns in a container
  }
  // From here on a failure is a real one: the machine can make namespaces, so it must be able
  // to make a bridge in one. switch_ns_ is deleted as the constructor unwinds.
  ip_or_throw({"-n", switch_ns_->name(), "link", "add", bridge_, "type", "bridge"});
  ip_or_throw({"-n", switch_ns_->name(), "link", "set", bridge_, "up"});
}

// Members do the work: hosts_ (declared last) are deleted first, then the switch namespace.
LabNetwork::~LabNetwork() = default;

LabNetwork::Host& LabNetwork::add_host(const std::string& label) {
  auto host = std::make_unique<Host>();
  const int k = static_cast<int>(hosts_.size()) + 1;
  const std::string pid = std::to_string(::getpid());
  host->label = label;
  host->index = k;
  host->ns_name = prefix_ + "-" + label;
  host->address = "10.254." + std::to_string(subnet_) + "." + std::to_string(k);
  char mac[18];
  std::snprintf(mac, sizeof mac, "02:00:0a:fe:%02x:%02x", subnet_, k);  // locally administered
  host->mac = mac;
  host->host_if = "h" + pid + "-" + std::to_string(k);    // at most 1 + 7 + 1 + 2 = 11 characters
  host->switch_if = "s" + pid + "-" + std::to_string(k);
  host->ns = std::make_unique<NetNamespace>(host->ns_name);
  hosts_.push_back(std::move(host));  // owned (and so cleaned up) before wire() can throw
  wire(*hosts_.back());
  return *hosts_.back();
}

void LabNetwork::wire(Host& host) {
  const std::string& sw = switch_ns_->name();
  ip_or_throw({"-n", host.ns_name, "link", "set", "lo", "up"});
  // Created inside the switch namespace with the peer placed straight into the host's: no
  // interface of ours ever appears in the namespace the tests run in.
  ip_or_throw({"-n", sw, "link", "add", host.switch_if, "type", "veth", "peer", "name", host.host_if, "netns",
               host.ns_name, "address", host.mac});
  ip_or_throw({"-n", sw, "link", "set", host.switch_if, "master", bridge_, "up"});
  ip_or_throw({"-n", host.ns_name, "addr", "add", host.address + "/24", "dev", host.host_if});
  ip_or_throw({"-n", host.ns_name, "link", "set", host.host_if, "up"});
  wait_until_forwarding(host);
}

void LabNetwork::wait_until_forwarding(const Host& host) {
  // "Link up" is not instant. The host's end came up last; the carrier this gives the bridge's
  // end reaches the bridge through the kernel's linkwatch worker, which then enables the port
  // (and attaches the end's transmit queue). Until then frames for the host are dropped: without
  // this wait about one run in ten of a reboot test lost the first segment after the reboot and
  // met the reset only on the 200 ms retransmission. No process prints a line when the port
  // comes up, so this polls `ip`, bounded; each run of `ip` takes milliseconds, which paces the
  // loop. Normally the first check passes.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (true) {
    const auto sw_end = run_ip({"-d", "-n", switch_ns_->name(), "link", "show", "dev", host.switch_if});
    const auto host_end = run_ip({"-n", host.ns_name, "link", "show", "dev", host.host_if});
    const auto up = [](const CommandResult& r) {
      return r.exit_code == 0 && r.output.find("LOWER_UP") != std::string::npos &&
             r.output.find("qdisc noop") == std::string::npos;
    };
    if (up(sw_end) && up(host_end) && sw_end.output.find("bridge_slave state forwarding") != std::string::npos) {
      return;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error("host " + host.label + "'s link did not come up within 10 s: " + sw_end.output +
                               " / " + host_end.output);
    }
  }
}

std::vector<std::string> LabNetwork::in_host(const Host& host, std::vector<std::string> program) const {
  std::vector<std::string> argv{ip_path(), "netns", "exec", host.ns_name};
  argv.insert(argv.end(), program.begin(), program.end());
  return argv;
}

void LabNetwork::link_down(Host& host) { ip_or_throw({"-n", host.ns_name, "link", "set", host.host_if, "down"}); }

void LabNetwork::link_up(Host& host) {
  ip_or_throw({"-n", host.ns_name, "link", "set", host.host_if, "up"});
  wait_until_forwarding(host);
}

void LabNetwork::crash(Host& host) {
  host.ns.reset();  // `ip netns del`
  // Deleting the namespace destroys its veth end, and one end takes its pair along, unless the
  // kernel keeps the dead namespace alive a while: a killed process's socket left in FIN-WAIT-1
  // does (seen while writing these tests). Deleting the bridge's end cuts the old host off
  // either way.
  const auto result = run_ip({"-n", switch_ns_->name(), "link", "del", host.switch_if});
  if (result.exit_code != 0) {
    const auto still_there = run_ip({"-n", switch_ns_->name(), "link", "show", "dev", host.switch_if});
    if (still_there.exit_code == 0) {
      throw std::runtime_error("cannot cut crashed host " + host.label + " off the bridge: " + result.output);
    }
  }
}

void LabNetwork::reboot(Host& host) {
  if (host.ns) throw std::logic_error("reboot of host " + host.label + ", which has not crashed");
  host.ns = std::make_unique<NetNamespace>(host.ns_name);
  wire(host);
}

}  // namespace chat::lab
