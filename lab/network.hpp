// LabNetwork: a private IPv4 network built from network namespaces, for chatlab's scenarios and
// the tests that break the link between two real processes (tests/netns/link_failure_test.cpp).
//
//   switch namespace            host namespaces (one per add_host)
//   +---------------------+     +---------------------------+
//   | bridge b<pid>       |     | h<pid>-<k>  10.254.<n>.<k> |
//   |   s<pid>-<k> ------------- (veth pair)                 |
//   +---------------------+     +---------------------------+
//
// Every address is 10.254.<n>.<k>/24 and exists only inside namespaces this object created;
// nothing outside them is ever configured or addressed. Names carry the test process's pid
// (and a per-process sequence number), so two runs on one machine never meet; interface names
// stay within the kernel's 15 characters and live only inside those namespaces.
//
// Failures it can stage on a host:
//   link_down  - its side of the veth pair goes down: packets to and from it vanish silently.
//   link_up    - the same side comes back up (a wifi that returns): the host's sockets are as
//                the drop left them, and packets flow again once the bridge forwards.
//   crash      - its namespace is deleted and its veth pair cut: whatever its sockets still try
//                to send (a killed process's FIN, say) reaches no one, like a machine losing
//                power. Take the link down and kill its processes first (by pid): a namespace
//                lives as long as a process in it, and the kernel keeps a dead one (and so its
//                veth pair) a while for a closing socket, which is why the pair is cut here.
//   reboot     - its namespace comes back with the same name, address and MAC and a fresh
//                veth pair on the bridge ("link up"), but with no sockets: a segment for an old
//                connection is answered with a RST.
//
// Lifetime: the destructor deletes every namespace it created (hosts first, then the switch),
// also when a test fails or throws. Processes started inside with in_host() should be owned by
// objects declared after the LabNetwork, so that they end (by pid, Subprocess) before it.
//
// Not thread safe: one test thread creates, uses and destroys a LabNetwork. Every `ip` command
// it runs is bounded by a deadline, and nothing sleeps: the one wait with no line to wait on
// (for a bridge port to forward after "link up") is a bounded poll of `ip`.
#pragma once

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace chat::lab {

// The machine cannot host a LabNetwork at all: not root, no runnable `ip`, or `ip netns add`
// fails. A test that gets this skips; any later failure (a bridge or veth that cannot be made)
// is a test failure, not a skip.
class NetworkUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A command's outcome, for messages.
struct CommandResult {
  int exit_code = -1;
  std::string output;  // stderr then stdout, as the command wrote them
};

// The path of program `name` ("ip", "ss"): from PATH, or from the sbin directories a non-login
// root shell may not have on PATH. Empty when there is none.
std::string find_program(const std::string& name);
// find_program("ip"), looked up once.
const std::string& ip_path();

// Runs `ip args...` (`ip` found on PATH or in /usr/sbin, /sbin) and waits at most `timeout` for
// it to finish. Throws std::runtime_error if there is no `ip` or it does not finish in time, and
// std::system_error if it cannot be started.
CommandResult run_ip(const std::vector<std::string>& args,
                     std::chrono::milliseconds timeout = std::chrono::seconds(20));

// One named network namespace, deleted (`ip netns del`) when this object is destroyed.
class NetNamespace {
 public:
  explicit NetNamespace(std::string name);  // `ip netns add`; throws std::runtime_error
  ~NetNamespace();
  NetNamespace(const NetNamespace&) = delete;
  NetNamespace& operator=(const NetNamespace&) = delete;

  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

class LabNetwork {
 public:
  struct Host {
    std::string label;    // "server", "client": for messages only
    int index = 0;        // <k>: the last byte of its address
    std::string ns_name;  // its namespace
    std::string address;  // "10.254.<n>.<k>"
    std::string mac;      // fixed, so that a reboot keeps it (neighbours' ARP caches stay right)
    std::string host_if;  // its end of the veth pair, inside its namespace
    std::string switch_if;  // the bridge's end, inside the switch namespace
    std::unique_ptr<NetNamespace> ns;  // null while crashed
  };

  // Creates the switch namespace and its bridge. Throws NetworkUnavailable when this machine
  // cannot do it at all (the reason is the message), std::runtime_error for other failures.
  LabNetwork();
  ~LabNetwork();
  LabNetwork(const LabNetwork&) = delete;
  LabNetwork& operator=(const LabNetwork&) = delete;

  // Creates a host namespace joined to the bridge, with address 10.254.<n>.<k>, k = 1, 2, ...
  // in the order of the calls. The reference stays valid as long as the LabNetwork.
  Host& add_host(const std::string& label);

  // argv that runs `program` inside `host`'s namespace (`ip netns exec`, which execs in place:
  // the spawned pid is the program's own pid).
  std::vector<std::string> in_host(const Host& host, std::vector<std::string> program) const;

  void link_down(Host& host);  // `ip link set <host_if> down` inside the host
  // `ip link set <host_if> up` inside the host, then waits (bounded, 10 s) until the bridge
  // forwards to and from it again.
  void link_up(Host& host);
  void crash(Host& host);      // deletes the host's namespace (and with it the veth pair)
  void reboot(Host& host);     // re-creates it: same address and MAC, new veth pair, link up

 private:
  void wire(Host& host);  // veth pair to the bridge, MAC, address, link up
  void wait_until_forwarding(const Host& host);  // the bridge passes frames to and from it

  const int sequence_;        // this process's LabNetworks count 1, 2, ...
  const std::string prefix_;  // "chat<pid>-<seq>": every namespace name starts with it
  const int subnet_;          // <n>
  const std::string bridge_;
  std::unique_ptr<NetNamespace> switch_ns_;
  // Declared after switch_ns_: destroyed (their namespaces deleted) before it.
  std::vector<std::unique_ptr<Host>> hosts_;
};

}  // namespace chat::lab
