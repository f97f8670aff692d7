using SkiaSharp;

namespace Diffuse.Tests.Imaging;

/// <summary>Pixel helpers for the imaging tests.</summary>
internal static class Pixels
{
    public static double Luminance(SKColor c) => 0.299 * c.Red + 0.587 * c.Green + 0.114 * c.Blue;

    public static bool IsDark(SKColor c) => Luminance(c) < 150;

    public static int CountDark(SKBitmap bitmap, SKRectI? within = null)
    {
        SKRectI r = within ?? new SKRectI(0, 0, bitmap.Width, bitmap.Height);
        int n = 0;
        for (int y = Math.Max(0, r.Top); y < Math.Min(bitmap.Height, r.Bottom); y++)
        {
            for (int x = Math.Max(0, r.Left); x < Math.Min(bitmap.Width, r.Right); x++)
            {
                if (IsDark(bitmap.GetPixel(x, y))) n++;
            }
        }
        return n;
    }

    /// <summary>The smallest rectangle holding every dark pixel, or empty when none.</summary>
    public static SKRectI DarkBounds(SKBitmap bitmap)
    {
        int left = int.MaxValue, top = int.MaxValue, right = -1, bottom = -1;
        for (int y = 0; y < bitmap.Height; y++)
        {
            for (int x = 0; x < bitmap.Width; x++)
            {
                if (!IsDark(bitmap.GetPixel(x, y))) continue;
                left = Math.Min(left, x);
                top = Math.Min(top, y);
                right = Math.Max(right, x + 1);
                bottom = Math.Max(bottom, y + 1);
            }
        }
        return right < 0 ? SKRectI.Empty : new SKRectI(left, top, right, bottom);
    }

    public static SKBitmap White(int width, int height)
    {
        var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(SKColors.White);
        return bitmap;
    }

    /// <summary>A fresh empty folder under the temp folder, deleted by <see cref="IDisposable.Dispose"/>.</summary>
    public sealed class TempFolder : IDisposable
    {
        public TempFolder() => Directory.CreateDirectory(Path);

        public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "diffuse-imaging-" + Guid.NewGuid().ToString("N"));

        public string File(string name) => System.IO.Path.Combine(Path, name);

        public string[] Names() => Directory.GetFileSystemEntries(Path).Select(System.IO.Path.GetFileName).OfType<string>().Order().ToArray();

        public void Dispose()
        {
            if (Directory.Exists(Path)) Directory.Delete(Path, recursive: true);
        }
    }
}
