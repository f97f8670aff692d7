using static TorchSharp.torch;

namespace Diffuse.Editing;

/// <summary>
/// The radially averaged power spectrum of images: P(f) = E|F(u, v)|²/(H·W) over images, channels and the frequencies
/// (u, v) whose radius √(u² + v²) (in cycles per image) rounds to f = 0 … ⌊min(H, W)/2⌋, F the 2-D DFT. Normalised by
/// H·W, so white noise of variance v has P(f) = v at every f (Parseval), and the forward process's x_t = √ᾱ·x + √(1 − ᾱ)·ε
/// has P_t(f) = ᾱ·P_data(f) + (1 − ᾱ) on average: the noise adds a flat floor that first covers the high frequencies,
/// where natural images have the least power (P falls roughly as a power of f), and the low ones last (Dieleman 2024,
/// "Diffusion is spectral autoregression"; Rissanen et al. 2023).
/// </summary>
public static class PowerSpectrum
{
    /// <summary>P(f) for f = 0 … ⌊min(H, W)/2⌋ of <paramref name="images"/> [N, C, H, W] (any float range).</summary>
    public static double[] Radial(Tensor images)
    {
        if (images.dim() != 4) throw new DiffuseException($"the power spectrum needs images [N, C, H, W] (got shape [{string.Join(", ", images.shape)}]).");
        using var scope = NewDisposeScope();
        long h = images.shape[2], w = images.shape[3];
        var power = fft.fft2(images.to_type(ScalarType.Float64)).abs().square().mean(new long[] { 0, 1 }) / (h * w);  // [H, W]
        var fy = fft.fftfreq(h, d: 1.0 / h, dtype: ScalarType.Float64).unsqueeze(1);
        var fx = fft.fftfreq(w, d: 1.0 / w, dtype: ScalarType.Float64).unsqueeze(0);
        var radius = (fy.square() + fx.square()).sqrt().round().to_type(ScalarType.Int64);
        int bins = (int)(Math.Min(h, w) / 2) + 1;
        var flatRadius = radius.flatten();
        var flatPower = power.flatten();
        var sums = zeros(bins, dtype: ScalarType.Float64).index_add_(0, flatRadius.clamp_max(bins - 1), flatPower.where(flatRadius < bins, 0.0), 1);
        var counts = zeros(bins, dtype: ScalarType.Float64).index_add_(0, flatRadius.clamp_max(bins - 1), (flatRadius < bins).to_type(ScalarType.Float64), 1);
        return (sums / counts.clamp_min(1)).data<double>().ToArray();
    }
}
