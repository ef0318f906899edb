// Contract: Chain (see chain.hpp). Implementation in progress.
#include "strategies/chain.hpp"
