"""Attacks by an ordinary user (or an outsider), each written as the request an attacker sends
and what the victim then observes: one file per hole, so a reader can scan them."""
