// Tests of diffraction from atoms (issue 7).
