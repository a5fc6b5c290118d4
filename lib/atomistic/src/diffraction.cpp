// Diffraction from atoms: S(Q, psi) of a configuration (issue 7).
