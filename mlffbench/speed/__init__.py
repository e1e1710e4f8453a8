"""Speed and comparison: the timing protocol, bench, compare and its report, process set-up."""
