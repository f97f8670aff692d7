using Diffuse.Imaging;
using SkiaSharp;

namespace Diffuse.Tests.Imaging;

public class BitmapFontTests
{
    private static SKBitmap Draw(string text, int scale = 1, int x = 3, int y = 3)
    {
        SKBitmap bitmap = Pixels.White(BitmapFont.MeasureWidth(text, scale) + 2 * x, BitmapFont.MeasureHeight(text, scale) + 2 * y);
        using var canvas = new SKCanvas(bitmap);
        BitmapFont.DrawText(canvas, text, x, y, SKColors.Black, scale);
        return bitmap;
    }

    private static bool[] Ink(SKBitmap bitmap)
    {
        var ink = new bool[bitmap.Width * bitmap.Height];
        for (int y = 0; y < bitmap.Height; y++)
            for (int x = 0; x < bitmap.Width; x++)
                ink[y * bitmap.Width + x] = Pixels.IsDark(bitmap.GetPixel(x, y));
        return ink;
    }

    [Fact]
    public void TextDrawsDarkPixelsInsideItsMeasuredBox()
    {
        using SKBitmap bitmap = Draw("Loss = 0.25 (gy)", scale: 2, x: 5, y: 4);
        Assert.True(Pixels.CountDark(bitmap) > 100);
        SKRectI ink = Pixels.DarkBounds(bitmap);
        Assert.Equal(5, ink.Left);
        Assert.Equal(4, ink.Top);
        Assert.Equal(5 + BitmapFont.MeasureWidth("Loss = 0.25 (gy)", 2), ink.Right);
        // "g" and "y" reach the bottom of the descenders.
        Assert.Equal(4 + BitmapFont.GlyphHeight * 2, ink.Bottom);
    }

    [Fact]
    public void EveryPrintableCharacterHasItsOwnInk()
    {
        var seen = new Dictionary<string, char>();
        for (char c = '!'; c <= '~'; c++)
        {
            Assert.True(BitmapFont.HasGlyph(c), $"no glyph for '{c}'");
            using SKBitmap bitmap = Pixels.White(12, 14);
            using (var canvas = new SKCanvas(bitmap)) BitmapFont.DrawText(canvas, c.ToString(), 2, 2, SKColors.Black);
            string pattern = string.Concat(Ink(bitmap).Select(b => b ? '#' : '.'));
            Assert.Contains('#', pattern);
            Assert.False(seen.TryGetValue(pattern, out char other), $"'{c}' looks exactly like '{other}'");
            seen[pattern] = c;
        }
    }

    [Fact]
    public void DifferentStringsDrawDifferently()
    {
        using SKBitmap a = Draw("t = 250");
        using SKBitmap b = Draw("t = 750");
        Assert.Equal(a.Width, b.Width);
        Assert.NotEqual(Ink(a), Ink(b));
    }

    [Fact]
    public void ScalingMakesEveryFontPixelASquare()
    {
        using SKBitmap one = Draw("Aq%9", scale: 1);
        using SKBitmap three = Draw("Aq%9", scale: 3);
        Assert.Equal(9 * Pixels.CountDark(one), Pixels.CountDark(three));
        Assert.Equal(3 * BitmapFont.MeasureWidth("Aq%9", 1), BitmapFont.MeasureWidth("Aq%9", 3));
    }

    [Fact]
    public void SpacesAndLineBreaksAreMeasured()
    {
        Assert.Equal(0, BitmapFont.MeasureWidth(""));
        Assert.True(BitmapFont.MeasureWidth("a b") > BitmapFont.MeasureWidth("ab"));
        Assert.Equal(BitmapFont.MeasureWidth("longer"), BitmapFont.MeasureWidth("ab\nlonger"));
        Assert.Equal(BitmapFont.LineAdvance + BitmapFont.GlyphHeight, BitmapFont.MeasureHeight("a\nb"));
        Assert.True(BitmapFont.MeasureWidth("iii") < BitmapFont.MeasureWidth("mmm"));
        Assert.Equal(BitmapFont.MeasureWidth("1111"), BitmapFont.MeasureWidth("8888"));
    }

    [Fact]
    public void GreekAndUnknownCharactersDrawSomething()
    {
        Assert.True(BitmapFont.HasGlyph('σ'));
        Assert.False(BitmapFont.HasGlyph('€'));
        using SKBitmap sigma = Draw("σ");
        using SKBitmap unknown = Draw("€");
        Assert.True(Pixels.CountDark(sigma) > 5);
        Assert.True(Pixels.CountDark(unknown) > 5);
    }
}
