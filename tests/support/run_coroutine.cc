// Anchors the support library; the helpers themselves are header templates.
#include "tests/support/run_coroutine.h"
