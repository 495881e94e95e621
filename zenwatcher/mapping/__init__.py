"""Pure mappers: a decoded payload in, findings out. No I/O, no logging, no clock."""
