using Diffuse.Imaging;
using static TorchSharp.torch;

namespace Diffuse.Cli;

/// <summary>Turns tensors into the pictures the commands write.</summary>
public static class Pictures
{
    /// <summary>A scatter panel of the first two columns of <paramref name="points"/> [N, D].</summary>
    public static ScatterPanel Panel(string title, Tensor points)
    {
        using var scope = NewDisposeScope();
        var p = points.to_type(ScalarType.Float32).contiguous();
        float[] x = p.select(1, 0).contiguous().data<float>().ToArray();
        float[] y = p.shape[1] > 1 ? p.select(1, 1).contiguous().data<float>().ToArray() : new float[x.Length];
        return new ScatterPanel(title, x, y);
    }

    /// <summary>A symmetric axis limit that shows the whole training range of the first two columns with a margin.</summary>
    public static float? AxisLimit(Diffuse.Configuration.DataDescription data)
    {
        if (data.Min is null || data.Max is null) return null;
        double extent = data.Min.Take(2).Concat(data.Max.Take(2)).Max(Math.Abs);
        return (float)(1.25 * extent);
    }

    /// <summary>Writes the training loss (raw and smoothed) against the step, on a log scale.</summary>
    public static void LossCurve(string path, IReadOnlyList<(int Step, double Loss)> losses)
    {
        if (losses.Count == 0) return;
        var x = losses.Select(l => (double)l.Step).ToArray();
        var y = losses.Select(l => l.Loss).ToArray();
        int window = Math.Max(1, losses.Count / 50);
        Figures.SaveLineChart(path, "Training loss", new[] { new LineSeries("loss", x, y) }, "step", "loss", logY: true, smoothWindow: window);
    }

    /// <summary>Writes the smoothed training loss of each quarter of the timesteps (low noise first) against the step.</summary>
    public static void QuartileLossCurve(string path, IReadOnlyList<(int Step, double Loss)> losses, IReadOnlyList<double[]> quartiles)
    {
        if (losses.Count == 0 || quartiles.Count != losses.Count) return;
        var x = losses.Select(l => (double)l.Step).ToArray();
        int window = Math.Max(1, losses.Count / 50);
        var series = Enumerable.Range(0, quartiles[0].Length).Select(q =>
        {
            // A quarter that no example of a step fell in has no loss at that step: carry the last value over.
            var y = new double[losses.Count];
            double last = double.NaN;
            for (int i = 0; i < y.Length; i++) y[i] = last = double.IsNaN(quartiles[i][q]) ? last : quartiles[i][q];
            double first = y.FirstOrDefault(v => !double.IsNaN(v));
            for (int i = 0; i < y.Length && double.IsNaN(y[i]); i++) y[i] = first;
            return new LineSeries($"t in quarter {q + 1}", x, y);
        }).ToArray();
        Figures.SaveLineChart(path, "Training loss by timestep quarter (1 = least noise)", series, "step", "loss", logY: true, smoothWindow: window);
    }

    /// <summary>
    /// Writes images in the model range [−1, 1], [N, C, H, W], as a PNG grid of <paramref name="columns"/> per row, with
    /// optional labels left of the rows; small images are drawn at twice their size.
    /// </summary>
    public static void ImageGrid(string path, Tensor images, int columns, IReadOnlyList<string>? rowLabels = null, int? scale = null)
    {
        int n = (int)images.shape[0], c = (int)images.shape[1], h = (int)images.shape[2], w = (int)images.shape[3];
        Figures.SaveImageGrid(path, ToUnit(images), n, c, h, w, Math.Min(columns, n), scale: scale ?? DefaultScale(h), rowLabels: rowLabels);
    }

    /// <summary>The PNG bytes that <see cref="ImageGrid"/> writes, for a caller that sends them rather than saving them (the server).</summary>
    public static byte[] ImageGridPng(Tensor images, int columns, IReadOnlyList<string>? rowLabels = null, int? scale = null)
    {
        int n = (int)images.shape[0], c = (int)images.shape[1], h = (int)images.shape[2], w = (int)images.shape[3];
        using var bitmap = Figures.RenderImageGrid(ToUnit(images), n, c, h, w, Math.Min(columns, n), scale: scale ?? DefaultScale(h), rowLabels: rowLabels);
        return Figures.EncodePng(bitmap);
    }

    /// <summary>The PNG bytes that <see cref="SavePng"/> writes for one uint8 image [C, H, W].</summary>
    public static byte[] Png(Tensor image)
    {
        using var scope = NewDisposeScope();
        int c = (int)image.shape[0], h = (int)image.shape[1], w = (int)image.shape[2];
        var unit = image.to_type(ScalarType.Float32).div(255).contiguous().data<float>().ToArray();
        using var bitmap = Figures.RenderImageGrid(unit, 1, c, h, w, 1, padding: 0);
        return Figures.EncodePng(bitmap);
    }

    /// <summary>How many screen pixels a side each image pixel takes in grids by default: 2 below 64 pixels, else 1.</summary>
    public static int DefaultScale(int height) => height < 64 ? 2 : 1;

    /// <summary>Model-range images [N, C, H, W] to [0, 1] pixel floats for the picture writers (clamped).</summary>
    public static float[] ToUnit(Tensor images)
    {
        using var scope = NewDisposeScope();
        return ((images.to_type(ScalarType.Float32) + 1) / 2).clamp(0, 1).contiguous().data<float>().ToArray();
    }

    /// <summary>Writes one uint8 image [C, H, W] as a PNG of exactly its pixels (grayscale or RGB), atomically.</summary>
    public static void SavePng(string path, Tensor image) => Diffuse.IO.AtomicFile.WriteAllBytes(path, Png(image));
}
