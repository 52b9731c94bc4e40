// Helpers for the chatclient-qt tests and the screenshot: a Catch2 main that makes the
// QApplication (offscreen), and waits that keep Qt's event loop turning.
//
// GUI thread only: the test's main thread is Qt's GUI thread.
#pragma once

#include <QCoreApplication>
#include <QStringList>
#include <QTest>

#include <chrono>
#include <functional>
#include <string>

namespace chat::test {

// Runs Qt's event loop until `done()` or `timeout`; true if done() came true.
inline bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  return QTest::qWaitFor(done, static_cast<int>(timeout.count()));
}

}  // namespace chat::test
