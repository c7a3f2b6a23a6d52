"""Herald's rules, independent of HTTP and of which store or bus runs underneath."""
