// Helpers for the chatclient-qt tests and the screenshot: the set-up before the QApplication
// (offscreen), and waits that keep Qt's event loop turning.
//
// GUI thread only: the test's main thread is Qt's GUI thread.
#pragma once

#include <QCoreApplication>
#include <QStringList>
#include <QTemporaryDir>
#include <QTest>

#include <chrono>
#include <csignal>
#include <functional>
#include <string>

namespace chat::test {

// What a test program sets before it makes its QApplication: Qt's offscreen platform (no
// display needed), QSettings and Qt's runtime files in a folder of this run's own (so a test
// never reads or writes the user's ~/.config), and SIGPIPE ignored (a send to a server that
// went away is an error, not the end). Keep the QTemporaryDir alive as long as Qt runs.
class OffscreenQt {
 public:
  OffscreenQt() {
    qputenv("QT_QPA_PLATFORM", "offscreen");
    qputenv("XDG_CONFIG_HOME", home_.path().toUtf8());
    qputenv("XDG_RUNTIME_DIR", home_.path().toUtf8());
    std::signal(SIGPIPE, SIG_IGN);
  }

 private:
  QTemporaryDir home_;
};

// Runs Qt's event loop until `done()` or `timeout`; true if done() came true.
inline bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  return QTest::qWaitFor(done, static_cast<int>(timeout.count()));
}

}  // namespace chat::test
