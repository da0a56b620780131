#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include "framework/crash_report.h"

// Installed before Catch's own fatal-signal handlers, which report the test case, restore this one
// and re-raise: a crashing test then also prints where it crashed.
static const bool crash_report_installed = (cb::install_crash_report("test"), true);
