-- Regenerates the shipped example: a synthetic portrait of a held-out
-- identity and a sentence spoken by espeak-ng.
--   fadalua scripts/make_examples.lua [--out examples] [--identity 900001] [--size 128]
local fada = require 'fada'
local cli = require 'fada.cli'
local face = require 'fada.data.face'
local speech = require 'fada.data.speech'

local opts = cli.parse(arg, {
  usage = 'usage: fadalua scripts/make_examples.lua [flags]',
  about = 'Writes examples/portrait.png (a synthetic held-out identity) and examples/speech.wav (espeak-ng).',
  {'out', 'string', 'examples', 'output folder'},
  {'identity', 'int', 900005, 'identity seed (held-out range)'},
  {'size', 'int', 128, 'portrait size in pixels'},
  {'text', 'string', 'Hello! This avatar was drawn and trained on a two core machine, and it speaks in time with the sound.',
   'sentence to speak'},
  {'voice', 'string', 'en+f3', 'espeak-ng voice'},
})

local id = face.identity(opts.identity)
local img = face.render(id, {dx = 0, dy = 0, roll = 0, yaw = 0, blink = 0, open = 0, round = 0}, opts.size)
fada.image.save(opts.out .. '/portrait.png', img)
local samples, sr = speech.synthesize(opts.text, opts.out .. '/speech.wav', {voice = opts.voice, rate = 150})
fada.audio.save(opts.out .. '/speech.wav', samples, sr)
print(('wrote %s/portrait.png (%dx%d) and %s/speech.wav (%.2f s at %d Hz)'):format(
  opts.out, opts.size, opts.size, opts.out, samples:size(1) / sr, sr))
