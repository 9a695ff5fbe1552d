"""Simulated and replayed wearables: the patients ``ecgmon simulate`` streams into ``ecg.windows``.

Modules, one job each:

- ``render``     the beat-timed waveform renderer (lead I in mV from beat times, types and rhythm);
- ``rhythms``    per-patient rhythm episodes and the beats they produce;
- ``artefacts``  baseline wander, motion bursts, electrode off, f- and F-waves;
- ``synthetic``  a synthetic patient: morphology, rhythm, artefacts, windows with ``truth``;
- ``replay``     WFDB records and dataset folders (cinc2017, ludb, ptbxl_z, ...) replayed as windows;
- ``ltafdb``     the Long-Term AF Database's real beat times rendered with synthetic morphology;
- ``gateway``    windows onto Kafka: pacing, clock error, faults, bounded in-flight sends;
- ``run``        builds the devices a command line asks for and runs the gateway.

``simulators`` imports ``ecgmon`` and nothing of ``models`` or ``streams``.

Truth vocabulary (``Window.truth``):

========== ===================================================== ======================
label      meaning                                               from
========== ===================================================== ======================
N          sinus rhythm                                          synthetic, replay, ltafdb
AF         atrial fibrillation                                   synthetic, replay, ltafdb
AFL        atrial flutter                                        synthetic, replay (ludb)
BRADY      sinus bradycardia (synthetic: 32-45 bpm)              synthetic, ludb, ltafdb ``(SBR``
TACHY      sinus tachycardia (synthetic: 110-165 bpm)            synthetic, ludb
PAUSE      sinus arrest, an RR of 3-6 s, in this window          synthetic
PVC        sinus with frequent premature ventricular beats       synthetic
VT         ventricular tachycardia (a run of 4-30 beats)         synthetic, ltafdb
NOISE      motion artefact over at least half the window         synthetic, replay (cinc2017 ``~``)
LEAD_OFF   electrode off over at least half the window           synthetic
OTHER      another rhythm (cinc2017 ``O``, ptbxl ``OTHER``, ...)  replay
SVTA       supraventricular tachyarrhythmia                      ltafdb
AB         atrial bigeminy                                       ltafdb
BIGEMINY   ventricular bigeminy                                  ltafdb
TRIGEMINY  ventricular trigeminy                                 ltafdb
IVR        idioventricular rhythm                                ltafdb
UNLABELLED outside the record's labelled span                    ltafdb
========== ===================================================== ======================

A replayed record without labels carries no truth (``None``). How a window's truth is chosen
is written in ``synthetic`` (artefact > brief event > majority rhythm) and ``ltafdb`` (majority
annotated rhythm).
"""
