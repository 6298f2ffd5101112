-- The nested multi-CFG mix (FADA's eq. for the teacher's 3 passes):
--   base + w_ref (ref − base) + w_audio (audio − ref)
-- one function for the teacher's outputs (fada.diffusion.cfg.multi) and the
-- student's CFG tokens (fada.models), so it lives in the lower layer of the
-- two. With w_ref = w_audio = 1 it is exactly `audio`.
return function(base, ref, audio, w_ref, w_audio)
  return base + (ref - base) * w_ref + (audio - ref) * w_audio
end
