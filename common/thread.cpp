#include "common/thread.hpp"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <system_error>
#include <utility>

namespace chat {

void release_unused_stack() {
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)  // their shadow stacks are their own
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return;
  void* base = nullptr;
  std::size_t size = 0;
  const bool got = pthread_attr_getstack(&attr, &base, &size) == 0;
  pthread_attr_destroy(&attr);
  if (!got) return;
  const long page = ::sysconf(_SC_PAGESIZE);
  if (page <= 0) return;
  char here = 0;
  const auto low = (reinterpret_cast<std::uintptr_t>(base) + page - 1) & ~static_cast<std::uintptr_t>(page - 1);
  // Four pages below this frame stay: the caller's next calls (a line's handling) use them.
  const auto high = (reinterpret_cast<std::uintptr_t>(&here) - 4 * page) & ~static_cast<std::uintptr_t>(page - 1);
  if (high > low) ::madvise(reinterpret_cast<void*>(low), high - low, MADV_DONTNEED);
#endif
}
namespace {

struct Start {
  std::string name;
  std::function<void()> body;
};

extern "C" void* thread_main(void* arg) {
  std::unique_ptr<Start> start(static_cast<Start*>(arg));
  name_current_thread(start->name);
  start->body();  // the bodies catch their own exceptions (STYLE.md habit 10)
  return nullptr;
}

}  // namespace

void name_current_thread(std::string_view name) {
  char buffer[16];
  const auto n = std::min<std::size_t>(name.size(), sizeof buffer - 1);
  name.copy(buffer, n);
  buffer[n] = '\0';
  pthread_setname_np(pthread_self(), buffer);
}

NamedThread::NamedThread(std::string name, std::size_t stack_bytes, std::function<void()> body) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, stack_bytes);
  auto start = std::make_unique<Start>(Start{std::move(name), std::move(body)});
  const int err = pthread_create(&thread_, &attr, thread_main, start.get());
  pthread_attr_destroy(&attr);
  if (err != 0) throw std::system_error(err, std::generic_category(), "cannot start a thread");
  start.release();  // thread_main owns it now
  started_ = true;
}

NamedThread::~NamedThread() { join(); }

NamedThread::NamedThread(NamedThread&& other) noexcept
    : thread_(other.thread_), started_(std::exchange(other.started_, false)) {}

NamedThread& NamedThread::operator=(NamedThread&& other) noexcept {
  if (this != &other) {
    join();
    thread_ = other.thread_;
    started_ = std::exchange(other.started_, false);
  }
  return *this;
}

void NamedThread::join() {
  if (!started_) return;
  pthread_join(thread_, nullptr);
  started_ = false;
}

}  // namespace chat
