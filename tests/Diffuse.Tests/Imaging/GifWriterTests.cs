using System.Runtime.InteropServices;
using Diffuse.Imaging;
using SkiaSharp;

namespace Diffuse.Tests.Imaging;

public class GifWriterTests
{
    private static SKBitmap Solid(int width, int height, SKColor color)
    {
        var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        bitmap.Erase(color);
        return bitmap;
    }

    private static SKBitmap FromFunction(int width, int height, Func<int, int, SKColor> color)
    {
        var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                bitmap.SetPixel(x, y, color(x, y));
        return bitmap;
    }

    /// <summary>Decodes every frame of a GIF file with SkiaSharp.</summary>
    private static (SKCodec Codec, List<SKColor[]> Frames) Decode(string path)
    {
        SKCodec codec = SKCodec.Create(path) ?? throw new InvalidOperationException("SkiaSharp cannot open " + path);
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var frames = new List<SKColor[]>();
        for (int i = 0; i < codec.FrameCount; i++)
        {
            var bytes = new byte[info.BytesSize];
            var handle = GCHandle.Alloc(bytes, GCHandleType.Pinned);
            try
            {
                SKCodecResult result = codec.GetPixels(info, handle.AddrOfPinnedObject(), new SKCodecOptions(i));
                Assert.Equal(SKCodecResult.Success, result);
            }
            finally
            {
                handle.Free();
            }
            var colors = new SKColor[info.Width * info.Height];
            for (int p = 0; p < colors.Length; p++) colors[p] = new SKColor(bytes[4 * p], bytes[4 * p + 1], bytes[4 * p + 2], bytes[4 * p + 3]);
            frames.Add(colors);
        }
        return (codec, frames);
    }

    private static (double Mean, int Max) Error(SKBitmap expected, SKColor[] actual)
    {
        long total = 0;
        int max = 0;
        for (int y = 0; y < expected.Height; y++)
        {
            for (int x = 0; x < expected.Width; x++)
            {
                SKColor e = expected.GetPixel(x, y), a = actual[y * expected.Width + x];
                int d = Math.Max(Math.Abs(e.Red - a.Red), Math.Max(Math.Abs(e.Green - a.Green), Math.Abs(e.Blue - a.Blue)));
                total += d;
                max = Math.Max(max, d);
            }
        }
        return ((double)total / (expected.Width * expected.Height), max);
    }

    [Fact]
    public void FewColoursRoundTripExactly()
    {
        using var folder = new Pixels.TempFolder();
        using SKBitmap red = Solid(40, 30, new SKColor(220, 30, 40));
        using SKBitmap blue = Solid(40, 30, new SKColor(20, 60, 200));
        using SKBitmap stripes = FromFunction(40, 30, (x, y) => (x / 5 + y / 3) % 3 == 0 ? SKColors.White : new SKColor(10, (byte)(x * 6), 90));
        string path = folder.File("anim.gif");
        GifWriter.Save(path, [red, blue, stripes], delayCentiseconds: 7);

        var (codec, frames) = Decode(path);
        using (codec)
        {
            Assert.Equal(3, codec.FrameCount);
            Assert.Equal(40, codec.Info.Width);
            Assert.Equal(30, codec.Info.Height);
            Assert.Equal(-1, codec.RepetitionCount);
            Assert.All(codec.FrameInfo, f => Assert.Equal(70, f.Duration));
        }
        Assert.Equal((0.0, 0), Error(red, frames[0]));
        Assert.Equal((0.0, 0), Error(blue, frames[1]));
        Assert.Equal((0.0, 0), Error(stripes, frames[2]));
        Assert.Equal(["anim.gif"], folder.Names());
    }

    [Fact]
    public void ManyColoursAreQuantisedClosely()
    {
        using var folder = new Pixels.TempFolder();
        using SKBitmap gradient = FromFunction(120, 90, (x, y) => new SKColor((byte)(x * 2), (byte)(y * 2.8), (byte)((x + y) % 256)));
        using SKBitmap smooth = FromFunction(120, 90, (x, y) => new SKColor((byte)(255 - x), 128, (byte)(y * 2)));
        string path = folder.File("many.gif");
        GifWriter.Save(path, [gradient, smooth], delayCentiseconds: 4, loop: false);

        var (codec, frames) = Decode(path);
        using (codec)
        {
            Assert.Equal(2, codec.FrameCount);
            Assert.Equal(0, codec.RepetitionCount);
        }
        var (meanA, maxA) = Error(gradient, frames[0]);
        var (meanB, maxB) = Error(smooth, frames[1]);
        Assert.True(meanA < 8 && maxA < 40, $"gradient: mean {meanA}, max {maxA}");
        Assert.True(meanB < 8 && maxB < 40, $"smooth: mean {meanB}, max {maxB}");
    }

    [Fact]
    public void LongAndIncompressibleFramesExerciseTheCodeTableResets()
    {
        // 256 exact colours in random order: many 12-bit codes and clear codes, and still lossless.
        var random = new Random(3);
        var palette = Enumerable.Range(0, 256).Select(i => new SKColor((byte)i, (byte)(255 - i), (byte)(i * 7))).ToArray();
        using SKBitmap noise = FromFunction(300, 200, (_, _) => palette[random.Next(256)]);
        using SKBitmap runs = FromFunction(300, 200, (x, y) => palette[(x / 37 + y / 11) % 5]);
        using var folder = new Pixels.TempFolder();
        string path = folder.File("noise.gif");
        GifWriter.Save(path, [noise, runs, noise], 1);

        var (codec, frames) = Decode(path);
        using (codec) Assert.Equal(3, codec.FrameCount);
        Assert.Equal((0.0, 0), Error(noise, frames[0]));
        Assert.Equal((0.0, 0), Error(runs, frames[1]));
        Assert.Equal((0.0, 0), Error(noise, frames[2]));
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(1, 2)]
    [InlineData(17, 30)]  // ends right where the code width grows
    [InlineData(253, 1)]
    [InlineData(255, 2)]
    public void SmallFramesOfEveryLengthDecode(int width, int height)
    {
        for (int colours = 1; colours <= 256; colours *= 4)
        {
            var random = new Random(width * 1000 + height + colours);
            int c = colours;
            using SKBitmap frame = FromFunction(width, height, (_, _) => new SKColor((byte)random.Next(c), 0, 0));
            byte[] gif = GifWriter.Encode([frame], 0);
            using var codec = SKCodec.Create(new MemoryStream(gif));
            Assert.NotNull(codec);
            using SKBitmap decoded = SKBitmap.Decode(gif);
            for (int y = 0; y < height; y++)
                for (int x = 0; x < width; x++)
                    Assert.Equal(frame.GetPixel(x, y), decoded.GetPixel(x, y));
        }
    }

    [Fact]
    public void CodeWidthBoundariesRoundTrip()
    {
        // Sequences whose compressed length passes each code-width change (9 to 12 bits) at the very end.
        for (int length = 240; length <= 4200; length += 37)
        {
            var random = new Random(length);
            using SKBitmap frame = FromFunction(length, 1, (_, _) => new SKColor((byte)(random.Next(2) * 255), 0, 0));
            byte[] gif = GifWriter.Encode([frame], 0);
            using SKBitmap decoded = SKBitmap.Decode(gif);
            Assert.NotNull(decoded);
            for (int x = 0; x < length; x++) Assert.Equal(frame.GetPixel(x, 0), decoded.GetPixel(x, 0));
        }
    }

    [Fact]
    public void TransparentPixelsBecomeWhite()
    {
        using SKBitmap clear = Solid(8, 8, SKColors.Transparent);
        byte[] gif = GifWriter.Encode([clear], 10);
        using SKBitmap decoded = SKBitmap.Decode(gif);
        Assert.Equal(SKColors.White, decoded.GetPixel(3, 3));
    }

    [Fact]
    public void FramesOfDifferentSizesAreRejected()
    {
        using SKBitmap a = Solid(8, 8, SKColors.Red);
        using SKBitmap b = Solid(9, 8, SKColors.Red);
        Assert.Throws<ArgumentException>(() => GifWriter.Encode([a, b], 10));
        Assert.Throws<ArgumentOutOfRangeException>(() => GifWriter.Encode([a], -1));
    }
}
