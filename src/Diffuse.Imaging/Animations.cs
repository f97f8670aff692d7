using Diffuse.Imaging.Drawing;
using SkiaSharp;

namespace Diffuse.Imaging;

/// <summary>One frame of an animated image grid: pixels in [0, 1] laid out as for <see cref="Figures.SaveImageGrid(string, float[], int, int, int, int, int, int, int, IReadOnlyList{string}?)"/>, and its caption.</summary>
/// <param name="Pixels">[count, channels, height, width] values in [0, 1].</param>
/// <param name="Caption">The text drawn above the grid, e.g. "step 12 of 50".</param>
public sealed record GridFrame(float[] Pixels, string Caption);

/// <summary>Animations of image grids (the reverse process of a diffusion model), captioned and kept small.</summary>
public static class Animations
{
    /// <summary>The per-channel tolerance (of 255) below which an animation frame leaves a pixel on screen as it is.</summary>
    public const int Tolerance = 12;

    /// <summary>
    /// Chooses at most <paramref name="frames"/> of a sequence of states so that the frames are evenly spaced in visible
    /// change: with c_k the change from state k − 1 to state k (c_0 ignored) and C_k = c_1 + … + c_k, frame j is the first
    /// state whose C reaches j/(frames − 1)·C_last; the first and last states are always kept, and a state is taken once.
    /// A stretch of states that barely differ (pure noise settling) then gets few frames, the stretch where the images
    /// form gets many. When every change is zero, the states are taken evenly by index.
    /// </summary>
    /// <param name="change">The change into each state (length = number of states; element 0 unused); non-negative.</param>
    /// <param name="frames">The largest number of frames (at least 2).</param>
    /// <returns>The chosen state indices, increasing.</returns>
    /// <exception cref="ArgumentException">No states, a negative or non-finite change, or fewer than 2 frames.</exception>
    public static int[] SpacedByChange(IReadOnlyList<double> change, int frames)
    {
        ArgumentNullException.ThrowIfNull(change);
        ArgumentOutOfRangeException.ThrowIfLessThan(frames, 2);
        if (change.Count == 0) throw new ArgumentException("there are no states to choose frames from.", nameof(change));
        var cumulative = new double[change.Count];
        for (int k = 1; k < change.Count; k++)
        {
            if (!(change[k] >= 0) || double.IsInfinity(change[k]))
                throw new ArgumentException($"change {k} is {change[k]}; changes must be finite and non-negative.", nameof(change));
            cumulative[k] = cumulative[k - 1] + change[k];
        }
        int last = change.Count - 1;
        double total = cumulative[last];
        var chosen = new SortedSet<int> { 0, last };
        for (int j = 1; j < frames - 1; j++)
        {
            if (total > 0)
            {
                double target = total * j / (frames - 1);
                int k = Array.FindIndex(cumulative, c => c >= target);
                chosen.Add(k < 0 ? last : k);
            }
            else
            {
                chosen.Add((int)Math.Round((double)last * j / (frames - 1)));
            }
        }
        return chosen.ToArray();
    }

    /// <summary>
    /// Renders each frame as an image grid with its caption in a band above, and writes them as one GIF (a shared
    /// palette, frame differences; see <see cref="GifWriter"/>), the last frame held for <paramref name="holdLastCentiseconds"/>.
    /// Every frame but the last is stored with a tolerance of <see cref="Tolerance"/> per channel (a pixel closer than
    /// that to what is on screen is not redrawn); the last frame is exact.
    /// </summary>
    /// <param name="path">The GIF file to write.</param>
    /// <param name="frames">The frames; every frame's pixels have the same layout.</param>
    /// <param name="count">Images per grid.</param>
    /// <param name="channels">1 (grey) or 3 (RGB).</param>
    /// <param name="height">Image height.</param>
    /// <param name="width">Image width.</param>
    /// <param name="columns">Images per row.</param>
    /// <param name="scale">Each image pixel becomes scale × scale screen pixels (1 to 64).</param>
    /// <param name="delayCentiseconds">Time each frame but the last is shown.</param>
    /// <param name="holdLastCentiseconds">Time the last frame is shown.</param>
    /// <exception cref="ArgumentException">No frames, or pixels that do not fit the layout.</exception>
    public static void SaveGridAnimation(string path, IReadOnlyList<GridFrame> frames, int count, int channels, int height, int width,
        int columns, int scale, int delayCentiseconds, int holdLastCentiseconds)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentNullException.ThrowIfNull(frames);
        if (frames.Count == 0) throw new ArgumentException("an animation needs at least one frame.", nameof(frames));
        var bitmaps = new List<SKBitmap>();
        try
        {
            foreach (var frame in frames)
                bitmaps.Add(Captioned(frame, count, channels, height, width, columns, scale));
            var delays = Enumerable.Repeat(delayCentiseconds, frames.Count).ToArray();
            delays[^1] = holdLastCentiseconds;
            GifWriter.Save(path, bitmaps, delays, tolerance: Tolerance);
        }
        finally
        {
            foreach (var bitmap in bitmaps) bitmap.Dispose();
        }
    }

    /// <summary>The grid of one frame below a white band that holds its caption, left-aligned.</summary>
    private static SKBitmap Captioned(GridFrame frame, int count, int channels, int height, int width, int columns, int scale)
    {
        using var grid = Figures.RenderImageGrid(frame.Pixels, count, channels, height, width, columns, scale: scale);
        int textScale = Math.Clamp(grid.Width / 160, 1, 3);
        int band = BitmapFont.LineHeight(textScale) + 4 * textScale;
        var bitmap = Surface.Create(grid.Width, grid.Height + band);
        try
        {
            using var canvas = new SKCanvas(bitmap);
            canvas.Clear(Style.Background);
            canvas.DrawBitmap(grid, 0, band);
            string caption = Text.Fit(frame.Caption, grid.Width - 4 * textScale, textScale);
            BitmapFont.DrawText(canvas, caption, 2 * textScale, 2 * textScale, Style.Text, textScale);
            return bitmap;
        }
        catch
        {
            bitmap.Dispose();
            throw;
        }
    }
}
