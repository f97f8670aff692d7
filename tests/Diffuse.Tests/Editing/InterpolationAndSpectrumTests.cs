using Diffuse.Editing;
using Diffuse.Randomness;
using static TorchSharp.torch;

namespace Diffuse.Tests.Editing;

/// <summary>Spherical against linear interpolation of latents, and the radially averaged power spectrum.</summary>
public class InterpolationAndSpectrumTests
{
    [Fact]
    public void SlerpKeepsTheNormOfGaussianLatentsAndLerpDoesNot()
    {
        using var scope = NewDisposeScope();
        const int d = 784;
        var a = SeededNoise.Normal(1, 0, 0, 1, new long[] { 1, 28, 28 });
        var b = SeededNoise.Normal(1, 0, 1, 1, new long[] { 1, 28, 28 });
        var slerp = Interpolation.Path(a[0], b[0], 9);
        var lerp = Interpolation.Path(a[0], b[0], 9, linear: true);
        Assert.Equal(new long[] { 9, 1, 28, 28 }, slerp.shape);
        Assert.True(slerp[0].allclose(a[0], 1e-6, 1e-6));
        Assert.True(slerp[8].allclose(b[0], 1e-5, 1e-5));
        var slerpNorms = slerp.flatten(1).norm(1).data<float>().ToArray();
        var lerpNorms = lerp.flatten(1).norm(1).data<float>().ToArray();
        double na = slerpNorms[0], nb = slerpNorms[8];
        // Both ends have norm ≈ √D; the great circle stays between them, the chord dips to ≈ √(D/2) in the middle.
        Assert.InRange(na, 0.9 * Math.Sqrt(d), 1.1 * Math.Sqrt(d));
        for (int k = 0; k < 9; k++) Assert.InRange(slerpNorms[k], Math.Min(na, nb) - 1e-3, Math.Max(na, nb) + 1e-3);
        Assert.InRange(lerpNorms[4] / Math.Sqrt(d), 0.65, 0.76);
        // Unit vectors: slerp stays on the sphere exactly.
        var ua = a.flatten(1) / a.norm();
        var ub = b.flatten(1) / b.norm();
        for (double t = 0; t <= 1; t += 0.125) Assert.InRange(Interpolation.Slerp(ua, ub, t).norm().item<float>(), 0.99999f, 1.00001f);
    }

    [Fact]
    public void TheSpectrumOfWhiteNoiseIsFlatAndACosineHasOneLine()
    {
        using var scope = NewDisposeScope();
        var noise = SeededNoise.Normal(3, 0, 0, 64, new long[] { 1, 32, 32 }) * 0.5;
        var spectrum = PowerSpectrum.Radial(noise);
        Assert.Equal(17, spectrum.Length);
        // Variance 0.25 at every frequency (the bins near f = 0 average few frequencies, so allow more there).
        for (int f = 0; f < spectrum.Length; f++) Assert.InRange(spectrum[f], f < 3 ? 0.15 : 0.22, f < 3 ? 0.35 : 0.28);
        var xs = arange(32, dtype: ScalarType.Float64) * (2 * Math.PI * 5 / 32);
        var cosine = xs.cos().unsqueeze(0).expand(32, 32).reshape(1, 1, 32, 32);
        var lines = PowerSpectrum.Radial(cosine);
        int peak = Array.IndexOf(lines, lines.Max());
        Assert.Equal(5, peak);
        Assert.True(lines.Where((_, f) => f != 5).All(p => p < 1e-20));
    }
}
