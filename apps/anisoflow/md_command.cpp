// `anisoflow md`: atomistic analysis of LAMMPS dumps to NeXus and CSV (issue 7).
