// Bond breaking and bond orientation between two configurations (issue 7).
