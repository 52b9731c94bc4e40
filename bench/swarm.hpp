// Swarm: chatbench's load generator for the side-by-side modes. Many client connections, one
// thread, one epoll set: non-blocking connects, the dialect's handshake (wire.hpp), PING
// answers in every dialect, and every received frame handed to the mode that runs it.
//
// Web clients (SwarmOptions::web_share > 0, chat dialect only): a share of the clients speak
// chatserver's protocol over a WebSocket (RFC 6455) instead of TCP lines. Such a client sends the
// opening handshake (GET /ws with a fresh random key, common/websocket.hpp), reads the response
// head as it arrives, checks the 101, and from then on every line it sends goes out as one
// masked text frame (a fresh mask per frame), and every text frame it reads (an unmasked frame,
// ws::MessageReader in the client role) is one line to the dialect, exactly as a TCP line would
// be. WebSocket pings get pongs, a close frame ends the client. All of it non-blocking and
// incremental, in the same event loop: a partial response head or frame waits for the next read.
//
// The first bytes go out at once: a connection that completes is served (HELLO, or the
// WebSocket handshake, sent) before the next few events of the round, not after all of them.
// Connecting clients wait in an epoll set of their own, which the event loop checks every 16
// events. chatserver greets a connection that has sent nothing within 100 ms as a person on nc
// (server/web.hpp), and a web client whose GET came later would be taken for one; in a join
// storm of thousands, one round of the loop can take longer than that.
//
// TLS clients (SwarmOptions::tls set; chatserver's protocol, line and web clients alike;
// chatbench --tls): every client runs a tls::Engine (common/tls.hpp) on its socket, in the same
// event loop and without blocking. Its ClientHello is made before it connects (the key share
// costs the generator tens of microseconds, and chatserver greets a connection whose first
// bytes take longer than 100 ms as a person on nc) and sent when the connect completes. What it
// receives is ciphertext, fed to the engine; the plaintext the engine gives back is read exactly
// as a clear-text client reads its bytes (lines, or a web client's frames). What a client queues
// (HELLO, its messages) is plaintext in `out` until the handshake is done; flush() encrypts it
// into the engine and sends the engine's output as the socket takes it. The server's
// certificate is not verified: chatbench talks to a chatserver it started itself with a
// throwaway self-signed certificate (or to the one its user named with --port); what is
// measured is the cost of the encryption, not of trust.
//
// Why one thread: a load generator that needs as many cores as the server it measures cannot
// tell the server's limit from its own. The swarm reports its thread's CPU time (cpu_seconds())
// so every report can say when chatbench, not the server, was the bottleneck.
//
// Threads: not thread safe. One thread (chatbench's main thread) creates it, runs it and
// destroys it; on_frame and on_end run on that thread, inside run_once().
//
// Memory: a client holds at most one partial incoming frame (bounded by max_frame) and the
// output its mode queued (the modes keep that under a low-water mark; with TLS, pending() counts
// the ciphertext waiting in the engine too). A TLS client's engine holds at most one read's
// ciphertext (scratch_size) plus a partial record, and gives its buffers back when they empty. A web client holds, in
// place of the partial frame, the response head until its 101 (at most 16 KiB) and then its
// MessageReader (at most max_frame of message plus one control frame and one header).
#pragma once

#include "bench/deadline.hpp"
#include "bench/wire.hpp"
#include "common/tls.hpp"

#include <netinet/in.h>

#include <cstddef>
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace chat::bench {

struct SwarmOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  Protocol protocol = Protocol::chat;
  std::string nick_prefix = "b";  // client i is "b<i>" where the dialect has nicknames
  // Connections in progress (connecting, or connected and not yet in the room) at any moment;
  // 0: no limit, every client starts at once (a join storm).
  std::size_t max_in_progress = 0;
  std::size_t max_frame = 1 << 20;  // a longer frame ends that client ("line over 1 MiB")
  // The share of clients (0..1) that are web clients: client i is one when
  // floor((i + 1) * web_share) > floor(i * web_share), so they are spread evenly over the
  // numbers (0.5: every second one, from client 0). Only with Protocol::chat.
  double web_share = 0;
  std::string web_path = "/ws";     // the WebSocket's path on the server
  // Non-null: every client speaks TLS with this client context (tls::client_context(); no
  // verification, see above). Only with Protocol::chat.
  tls::Context tls;
};

// Is client number `id` of a run a web client, with `web_share` of them web?
bool is_web_client(std::size_t id, double web_share);


class Swarm {
 public:
  enum class State { waiting, connecting, handshake, joined, ended };

  // A web client's WebSocket: the handshake, then the frame reader.
  struct Web;

  struct Client {
    int fd = -1;
    bool web = false;          // a WebSocket client (else the dialect's own framing)
    std::unique_ptr<Web> ws;   // web clients: their WebSocket's state
    std::unique_ptr<tls::Engine> tls;  // TLS clients: from the connect to the end
    State state = State::waiting;
    std::string in;            // an incomplete frame carried over to the next read (< max_frame)
    std::string out;           // plaintext; a TLS client's waits here until the handshake is done
    std::size_t out_pos = 0;   // out[out_pos..] is not yet written (or encrypted)
    bool watching_out = false; // EPOLLOUT registered
    bool welcomed = false;
    std::size_t roster = 0;    // members named on joining, self included
    std::uint64_t chatter = 0; // members who joined after this client did
    std::uint64_t left_seen = 0;
    bool was_joined = false;
    Clock::time_point started{};
    Clock::time_point joined_at{};
    std::string end_reason;    // why it ended: the server's BYE / ERROR line, or what the socket said
  };

  // Resolves the address (a numeric IPv4 or IPv6 address). Throws std::runtime_error.
  explicit Swarm(SwarmOptions options);
  ~Swarm();  // closes every connection
  Swarm(const Swarm&) = delete;
  Swarm& operator=(const Swarm&) = delete;

  const SwarmOptions& options() const { return options_; }
  const Dialect& dialect() const { return dialect_; }

  // Adds `n` clients numbered from size() on; they start connecting in run_once() (all at once,
  // or max_in_progress at a time). Raises the process's RLIMIT_NOFILE first if needed; throws
  // std::runtime_error when the limit cannot fit them.
  void add_clients(std::size_t n);
  // The same with the run-wide numbers of the clients (several swarms, one per generator
  // thread, share out the clients of one run): client i here is client ids[i] of the run.
  void add_clients(const std::vector<std::size_t>& ids);
  std::size_t size() const { return clients_.size(); }
  const Client& client(std::size_t i) const { return clients_[i]; }
  std::size_t id(std::size_t i) const { return ids_[i]; }  // client i's number in the run
  const std::string& nick(std::size_t i) const { return nicks_[i]; }  // prefix + id(i)

  // Called for every message and stats frame (the views are valid during the call only), with
  // the time the bytes were read.
  std::function<void(std::size_t client, const Seen& seen, Clock::time_point now)> on_frame;
  // Called once when a client's connection ends for any reason.
  std::function<void(std::size_t client)> on_end;

  // Waits for events until `deadline` (at most poll_slice), handles all that came. Throws
  // Interrupted.
  void run_once(Clock::time_point deadline);
  // run_once() until `done()` or `deadline`; true if done.
  bool run_until(const std::function<bool()>& done, Clock::time_point deadline);

  // Queues bytes for client `i` and writes what the socket takes now. Ignored once it ended.
  // `bytes` are in the dialect's framing; a web client sends each of their lines (up to each
  // LF) as one masked text frame instead.
  void send(std::size_t i, std::string_view bytes);
  // The same without writing: call flush(i) afterwards.
  void queue(std::size_t i, std::string_view bytes);
  // The client's output buffer, to encode into directly (not a web client's: use queue()); then
  // call flush(i).
  std::string& out(std::size_t i) { return clients_[i].out; }
  bool is_web(std::size_t i) const { return clients_[i].web; }
  std::size_t web_clients() const { return web_count_; }
  bool is_tls() const { return options_.tls != nullptr; }
  // Bytes queued for client i and not yet taken by its socket (with TLS: plaintext not yet
  // encrypted, and ciphertext not yet sent).
  std::size_t pending(std::size_t i) const {
    const Client& c = clients_[i];
    return c.out.size() - c.out_pos + (c.tls ? c.tls->output_size() : 0);
  }
  void flush(std::size_t i);
  // Closes one client (it counts as ended, reason "closed by chatbench").
  void close(std::size_t i);

  std::size_t joined() const { return joined_; }           // in the room now
  std::size_t ever_joined() const { return ever_joined_; }  // in the room at some point
  std::size_t ended() const { return ended_; }
  std::size_t refused() const { return refused_; }          // ended before joining
  std::size_t dropped() const { return dropped_; }          // ended after joining
  // Clients not yet in the room that have not ended either.
  std::size_t in_progress() const { return connecting_; }
  // The last time a client became joined.
  Clock::time_point last_join() const { return last_join_; }
  // The last time any client saw another member join (the join chatter).
  Clock::time_point last_chatter() const { return last_chatter_; }

  // This thread's CPU time (user + system) so far, in seconds.
  static double cpu_seconds();

 private:
  void start_connects();
  void serve_connects();  // the connections that completed since the last look
  void on_connected(std::size_t i);
  void on_readable(std::size_t i);
  // A web client's received bytes: the response head until the 101, then frames. False if the
  // client ended.
  bool web_received(std::size_t i, std::string_view bytes, Clock::time_point now);
  // Plaintext received (a clear-text client's bytes, or what a TLS client's engine decrypted):
  // frames to the dialect, or to the WebSocket. `data` starts with the carried partial frame
  // (a line client's `in`). False if the client ended.
  bool plaintext_received(std::size_t i, std::string_view data, Clock::time_point now);
  // A TLS client's ciphertext: into the engine, the plaintext out (into plain_, after the
  // carried partial frame). False if the client ended.
  bool cipher_received(std::size_t i, std::string_view cipher, Clock::time_point now);
  void flush_tls(std::size_t i);
  void queue_frames(std::size_t i, std::string_view lines);
  void queue_control(std::size_t i, int opcode, std::string_view payload);
  std::array<std::uint8_t, 4> next_mask();
  void handle_frame(std::size_t i, std::string_view frame, Clock::time_point now);
  void end(std::size_t i, std::string reason);
  void set_joined(std::size_t i, Clock::time_point now);
  void watch_out(std::size_t i, bool on);

  SwarmOptions options_;
  const Dialect& dialect_;
  sockaddr_storage address_{};
  socklen_t address_size_ = 0;
  int epoll_fd_ = -1;
  int connect_fd_ = -1;  // the connecting clients' epoll set, itself in epoll_fd_
  std::vector<Client> clients_;
  std::vector<std::size_t> ids_;
  std::vector<std::string> nicks_;  // made once: compared on every message
  std::size_t next_to_start_ = 0;
  std::size_t connecting_ = 0;  // started, not joined, not ended
  std::size_t joined_ = 0;
  std::size_t ever_joined_ = 0;
  std::size_t ended_ = 0;
  std::size_t refused_ = 0;
  std::size_t dropped_ = 0;
  Clock::time_point last_join_{};
  Clock::time_point last_chatter_{};
  std::vector<char> scratch_;  // the receive buffer shared by every client (max_frame + a read)
  std::string plain_;          // TLS: a client's carried frame and the plaintext of one read
  std::size_t web_count_ = 0;
  std::uint64_t prng_ = 0;     // xorshift64: WebSocket keys and masks
  // The client whose MessageReader is feeding right now: end() must not free it meanwhile.
  std::size_t feeding_ = SIZE_MAX;
};

}  // namespace chat::bench
