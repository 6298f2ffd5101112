-- Ten minutes of speech through the pipeline: clip after clip with memory
-- flat in the number of clips, and a playable ten-minute MP4 with sound.
-- labels: slow
local fada = require 'fada'
local models = require 'fada.models'
local pipeline = require 'fada.pipeline'

test('10 minutes of audio: 5000 clips, tensor memory flat across them, a 600 s MP4', function()
  local dir = os.tmpname()
  os.remove(dir)
  fada.mkdir(dir)
  local model = models.FadaModel(models.config('tiny'))      -- clips of 3 frames at 16x16
  model:eval()
  local samples = fada.randn(16000 * 600, fada.Generator(9)) * 0.1
  local live = {}
  local out = dir .. '/long.mp4'
  local s = pipeline.sample{model = model, audio = {samples = samples, sample_rate = 16000}, out = out,
                            steps = 1, threads = 1, progress = false, on_clip = function(c)
    if c % 500 == 0 then -- what stays allocated between clips, garbage collected
      collectgarbage()
      live[#live + 1] = fada.memory().live
    end
  end}
  assert_eq(s.frames, 15000)
  assert_eq(s.clips, 5000)
  assert_eq(#live, 10)
  local lo, hi = math.huge, 0
  for i = 2, #live do lo, hi = math.min(lo, live[i]), math.max(hi, live[i]) end
  print(('      live tensor bytes from clip 1000 to 5000: %.1f .. %.1f MiB'):format(lo / 2^20, hi / 2^20))
  assert(hi - lo < 2^20, ('memory grew by %.1f MiB over 4000 clips'):format((hi - lo) / 2^20))
  local p = io.popen(('ffprobe -v error -show_entries format=duration:stream=codec_type -of csv=p=0 %q'):format(out))
  local probe = p:read('a')
  p:close()
  assert(probe:find('video') and probe:find('audio'), probe)
  local duration = tonumber(probe:match('(%d+%.%d+)'))
  assert(duration and math.abs(duration - 600) < 0.5, 'duration: ' .. probe)
  os.remove(out)
  os.remove(dir)
end)
