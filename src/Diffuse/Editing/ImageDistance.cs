using static TorchSharp.torch;

namespace Diffuse.Editing;

/// <summary>How far a reconstruction is from its source, per image, for images in the model range [−1, 1].</summary>
public static class ImageDistance
{
    /// <summary>
    /// The peak signal-to-noise ratio per image in dB: 10·log10(peak²/MSE) with peak 2, the width of [−1, 1] (the same as
    /// 255 for 8-bit pixels); +∞ for identical images.
    /// </summary>
    public static double[] Psnr(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        var mse = (a.to_type(ScalarType.Float64) - b.to_type(ScalarType.Float64)).square().flatten(1).mean(new long[] { 1 });
        return mse.data<double>().ToArray().Select(m => m == 0 ? double.PositiveInfinity : 10 * Math.Log10(4 / m)).ToArray();
    }

    /// <summary>The largest absolute pixel difference per image, in 8-bit levels (1 level = 2/255 of the model range).</summary>
    public static double[] MaxError(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        var max = (a.to_type(ScalarType.Float64) - b.to_type(ScalarType.Float64)).abs().flatten(1).amax(new long[] { 1 }) * 127.5;
        return max.data<double>().ToArray();
    }

    /// <summary>The mean PSNR in dB over images, with identical images counted at <paramref name="cap"/> dB.</summary>
    public static double MeanPsnr(Tensor a, Tensor b, double cap = 100) => Psnr(a, b).Select(p => Math.Min(p, cap)).Average();
}
