"""The gateway benchmark: direct upstream vs the Distill gateway vs bare forwarders."""
