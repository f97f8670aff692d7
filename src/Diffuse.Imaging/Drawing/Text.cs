using System.Text;
using SkiaSharp;

namespace Diffuse.Imaging.Drawing;

/// <summary>Placement helpers on top of <see cref="BitmapFont"/>.</summary>
internal static class Text
{
    public static void Centered(SKCanvas canvas, string text, float centerX, float top, SKColor color, int scale) =>
        BitmapFont.DrawText(canvas, text, MathF.Round(centerX - BitmapFont.MeasureWidth(text, scale) / 2f), top, color, scale);

    /// <summary>Centred text drawn twice, one pixel apart, so that its strokes are heavier (for titles at scale 2 or more).</summary>
    public static void CenteredBold(SKCanvas canvas, string text, float centerX, float top, SKColor color, int scale)
    {
        float left = MathF.Round(centerX - (BitmapFont.MeasureWidth(text, scale) + 1) / 2f);
        BitmapFont.DrawText(canvas, text, left, top, color, scale);
        if (scale > 1) BitmapFont.DrawText(canvas, text, left + 1, top, color, scale);
    }

    public static void RightAligned(SKCanvas canvas, string text, float right, float top, SKColor color, int scale) =>
        BitmapFont.DrawText(canvas, text, right - BitmapFont.MeasureWidth(text, scale), top, color, scale);

    /// <summary>Cuts <paramref name="text"/> and appends ".." when it is wider than <paramref name="maxWidth"/>.</summary>
    public static string Fit(string text, int maxWidth, int scale)
    {
        if (BitmapFont.MeasureWidth(text, scale) <= maxWidth) return text;
        for (int length = text.Length - 1; length > 0; length--)
        {
            string cut = text[..length].TrimEnd() + "..";
            if (BitmapFont.MeasureWidth(cut, scale) <= maxWidth) return cut;
        }
        return "";
    }

    /// <summary>Breaks <paramref name="text"/> into lines at spaces so that each fits in <paramref name="maxWidth"/>.</summary>
    public static string Wrap(string text, int maxWidth, int scale)
    {
        var result = new StringBuilder();
        foreach (string paragraph in text.Replace("\r", "").Split('\n'))
        {
            if (result.Length > 0) result.Append('\n');
            string line = "";
            foreach (string word in paragraph.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                string candidate = line.Length == 0 ? word : line + " " + word;
                if (line.Length > 0 && BitmapFont.MeasureWidth(candidate, scale) > maxWidth)
                {
                    result.Append(Fit(line, maxWidth, scale)).Append('\n');
                    line = word;
                }
                else
                {
                    line = candidate;
                }
            }
            result.Append(Fit(line, maxWidth, scale));
        }
        return result.ToString();
    }
}
