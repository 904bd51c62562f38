"""Bare forwarders (~30 lines each): the floor the gateway's own overhead is measured against."""
