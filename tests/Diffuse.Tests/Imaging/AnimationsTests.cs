using Diffuse.Imaging;
using SkiaSharp;

namespace Diffuse.Tests.Imaging;

public class AnimationsTests
{
    [Fact]
    public void FramesAreSpacedByChangeNotBySteps()
    {
        // 50 states: the first 30 barely change (noise settling), the last 20 change a lot (images forming).
        var change = Enumerable.Range(0, 50).Select(k => k == 0 ? 0 : k < 30 ? 0.001 : 0.05).ToArray();
        var frames = Animations.SpacedByChange(change, 11);
        Assert.Equal(0, frames[0]);
        Assert.Equal(49, frames[^1]);
        Assert.True(frames.Zip(frames.Skip(1)).All(p => p.First < p.Second), string.Join(",", frames));
        // The quiet first 30 states hold 0.029 of the total 1.029 of change: one frame besides the first.
        Assert.True(frames.Count(f => f > 0 && f < 30) <= 1, string.Join(",", frames));
        Assert.True(frames.Count(f => f >= 30) >= 9, string.Join(",", frames));
    }

    [Fact]
    public void NoChangeSpacesEvenlyAndBadInputIsRefused()
    {
        Assert.Equal(new[] { 0, 5, 10 }, Animations.SpacedByChange(new double[11], 3));
        Assert.Equal(new[] { 0 }, Animations.SpacedByChange(new double[1], 5));
        Assert.Equal(new[] { 0, 1, 2 }, Animations.SpacedByChange(new double[] { 0, 1, 1 }, 40));
        Assert.Throws<ArgumentException>(() => Animations.SpacedByChange(new double[] { 0, -1 }, 3));
        Assert.Throws<ArgumentException>(() => Animations.SpacedByChange(new double[] { 0, double.NaN }, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => Animations.SpacedByChange(new double[] { 0, 1 }, 1));
    }

    [Fact]
    public void UnchangedPixelsCostLittleAndEveryFrameDecodesExactly()
    {
        // A 60×60 noisy picture; each later frame changes one 6×6 square. Full frames would cost ~30 KB each.
        var random = new Random(1);
        var colours = Enumerable.Range(0, 200).Select(i => new SKColor((byte)random.Next(256), (byte)random.Next(256), (byte)random.Next(256))).ToArray();
        var bitmaps = new List<SKBitmap>();
        var first = new SKBitmap(new SKImageInfo(60, 60, SKColorType.Rgba8888, SKAlphaType.Premul));
        for (int y = 0; y < 60; y++) for (int x = 0; x < 60; x++) first.SetPixel(x, y, colours[random.Next(200)]);
        bitmaps.Add(first);
        for (int f = 1; f < 10; f++)
        {
            var next = bitmaps[^1].Copy();
            for (int y = 0; y < 6; y++) for (int x = 0; x < 6; x++) next.SetPixel(6 * f + x, 5 * f + y, colours[(f * 7 + x + y) % 200]);
            bitmaps.Add(next);
        }
        bitmaps.Add(bitmaps[^1].Copy()); // identical to the one before: merged into it
        try
        {
            byte[] gif = GifWriter.Encode(bitmaps, Enumerable.Range(0, bitmaps.Count).Select(i => 10 + i).ToArray());
            byte[] single = GifWriter.Encode([bitmaps[0]], 10);
            Assert.True(gif.Length < single.Length + 9 * 400, $"{gif.Length} bytes for 10 frames; one frame alone takes {single.Length}");
            using var codec = SKCodec.Create(new MemoryStream(gif));
            Assert.Equal(10, codec.FrameCount);
            Assert.Equal(19 + 20, codec.FrameInfo[9].Duration / 10);
            var info = new SKImageInfo(60, 60, SKColorType.Rgba8888, SKAlphaType.Unpremul);
            using var canvas = new SKBitmap(info);
            for (int i = 0; i < 10; i++)
            {
                Assert.Equal(SKCodecResult.Success, codec.GetPixels(info, canvas.GetPixels(), new SKCodecOptions(i, i - 1)));
                for (int y = 0; y < 60; y++)
                    for (int x = 0; x < 60; x++)
                        Assert.Equal(bitmaps[i].GetPixel(x, y), canvas.GetPixel(x, y));
            }
        }
        finally
        {
            foreach (var b in bitmaps) b.Dispose();
        }
    }

    [Fact]
    public void CaptionedGridAnimationShowsTheStepAndHoldsTheLastFrame()
    {
        string path = Path.Combine(Path.GetTempPath(), $"diffuse-anim-{Guid.NewGuid():N}.gif");
        try
        {
            var frames = Enumerable.Range(0, 3).Select(f => new GridFrame(Enumerable.Repeat(f / 2f, 2 * 3 * 4 * 4).ToArray(), $"step {f + 1} of 3")).ToList();
            Animations.SaveGridAnimation(path, frames, 2, 3, 4, 4, 2, 2, delayCentiseconds: 12, holdLastCentiseconds: 200);
            using var codec = SKCodec.Create(path);
            Assert.Equal(3, codec.FrameCount);
            Assert.Equal(new[] { 120, 120, 2000 }, codec.FrameInfo.Select(f => f.Duration).ToArray());
            // A grid of 2 images of 8×8 screen pixels with 2-pixel padding (22 wide), below a caption band.
            Assert.Equal(22, codec.Info.Width);
            Assert.True(codec.Info.Height > 12);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void ATolerancePerChannelLeavesSmallChangesOnScreenButTheLastFrameIsExact()
    {
        // Three frames of a 20×20 grey ramp; the second adds +5 to every pixel (within 12), the third +40 (beyond it).
        SKBitmap Ramp(int offset)
        {
            var b = new SKBitmap(new SKImageInfo(20, 20, SKColorType.Rgba8888, SKAlphaType.Premul));
            for (int y = 0; y < 20; y++) for (int x = 0; x < 20; x++) { byte v = (byte)(x * 10 + offset); b.SetPixel(x, y, new SKColor(v, v, v)); }
            return b;
        }
        using SKBitmap a = Ramp(0), b2 = Ramp(5), c = Ramp(5), d = Ramp(40);
        byte[] gif = GifWriter.Encode([a, b2, c, d], [10, 10, 10, 10], tolerance: 12);
        using var codec = SKCodec.Create(new MemoryStream(gif));
        // The second and third frames change nothing on screen: merged into the first, which is shown 30 cs.
        Assert.Equal(2, codec.FrameCount);
        Assert.Equal(300, codec.FrameInfo[0].Duration);
        var info = new SKImageInfo(20, 20, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var screen = new SKBitmap(info);
        Assert.Equal(SKCodecResult.Success, codec.GetPixels(info, screen.GetPixels(), new SKCodecOptions(0)));
        Assert.Equal(a.GetPixel(7, 3), screen.GetPixel(7, 3));
        Assert.Equal(SKCodecResult.Success, codec.GetPixels(info, screen.GetPixels(), new SKCodecOptions(1, 0)));
        for (int x = 0; x < 20; x++) Assert.Equal(d.GetPixel(x, 5), screen.GetPixel(x, 5));
        Assert.Throws<ArgumentOutOfRangeException>(() => GifWriter.Encode([a], [10], tolerance: 256));
    }
}
