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
}
