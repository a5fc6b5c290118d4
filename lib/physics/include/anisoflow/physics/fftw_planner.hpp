#pragma once
// FFTW's planner (plan creation and destruction) is not thread-safe; fftw_execute on distinct
// arrays is. Every module of the process that makes or destroys FFTW plans holds this one mutex
// while it does (physics' transforms, atomistic's diffraction): a lock per module would still let
// two modules plan at once.

#include <mutex>

namespace anisoflow::physics {

std::mutex& fftw_planner_mutex();

}  // namespace anisoflow::physics
