// NamedThread: a joinable thread with a stack size of our choosing and a name the kernel
// knows (pthread_setname_np). chatserver's readers are NamedThreads ("reader #7"); the other
// threads name themselves through set_thread_role (common/log.hpp), so `top -H`, `ps -L` and gdb
// show the thread model the code teaches: "listener", "poller", "writer 1", "reader alice".
//
// Why not std::jthread: it cannot set the stack size, and a server with 10,000 reader threads
// cannot give each the default 8 MiB of address space. Like std::jthread it joins in its
// destructor, so no thread is ever left detached.
//
// Threads: the owning thread starts and joins it; name_current_thread() is for the thread itself.
#pragma once

#include <pthread.h>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace chat {

// The stack of threads that never go deep (a reader handles one line at a time): 256 KiB,
// more under the sanitizers, whose instrumentation needs more stack per frame.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr std::size_t small_stack = 2u << 20;
#else
inline constexpr std::size_t small_stack = 256u << 10;
#endif

// Gives back to the kernel the pages of the calling thread's stack below the current frame
// (leaving a few pages of margin): after a deep call that will not come again (a TLS
// handshake, whose crypto goes much deeper than reading lines), a thread that lives for hours
// need not keep that memory resident. The pages come back, zeroed, if the stack grows there again.
void release_unused_stack();

// Names the calling thread for the kernel (at most 15 bytes are kept; longer names are cut).
void name_current_thread(std::string_view name);

class NamedThread {
 public:
  NamedThread() = default;
  // Starts `body` on a new thread with `stack_bytes` of stack, named `name`. Throws
  // std::system_error (EAGAIN: no more threads or memory) if it cannot be created.
  NamedThread(std::string name, std::size_t stack_bytes, std::function<void()> body);
  ~NamedThread();  // join()
  NamedThread(NamedThread&& other) noexcept;
  NamedThread& operator=(NamedThread&& other) noexcept;
  NamedThread(const NamedThread&) = delete;
  NamedThread& operator=(const NamedThread&) = delete;

  bool joinable() const { return started_; }
  void join();  // waits for the body to return; does nothing if not joinable

 private:
  pthread_t thread_{};
  bool started_ = false;
};

}  // namespace chat
