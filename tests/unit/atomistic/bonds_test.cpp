// Tests of bond breaking and bond orientation (issue 7).
