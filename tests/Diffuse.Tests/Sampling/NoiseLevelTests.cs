using Diffuse.Sampling;
using Diffuse.Schedules;

namespace Diffuse.Tests.Sampling;

public class NoiseLevelTests
{
    [Fact]
    public void KarrasLevelsRunFromSigmaMaxToSigmaMinThenZero()
    {
        var schedule = NoiseSchedule.Linear(1000);
        double sigmaMin = schedule.Sigma(0), sigmaMax = schedule.Sigma(999);
        var sigmas = NoiseLevels.Karras(schedule, 10);
        Assert.Equal(11, sigmas.Length);
        Assert.Equal(sigmaMax, sigmas[0]);
        Assert.Equal(sigmaMin, sigmas[9]);
        Assert.Equal(0.0, sigmas[10]);
        for (int i = 1; i < sigmas.Length; i++) Assert.True(sigmas[i] < sigmas[i - 1]);
        // Karras et al. 2022, eq. 5, in the middle.
        double expected = Math.Pow(Math.Pow(sigmaMax, 1 / 7.0) + 4 / 9.0 * (Math.Pow(sigmaMin, 1 / 7.0) - Math.Pow(sigmaMax, 1 / 7.0)), 7);
        Assert.Equal(expected, sigmas[4], 12);
        // ρ = 1 is uniform in σ.
        var uniform = NoiseLevels.Karras(3, 1.0, 5.0, rho: 1);
        Assert.Equal(new[] { 5.0, 3.0, 1.0, 0.0 }, uniform);
        Assert.Equal(new[] { 5.0, 0.0 }, NoiseLevels.Karras(1, 1.0, 5.0));
    }

    [Fact]
    public void LogSnrLevelsAreGeometric()
    {
        var sigmas = NoiseLevels.LogSnr(5, 0.01, 100);
        Assert.Equal(new[] { 100, 10, 1, 0.1, 0.01, 0 }, sigmas.Select(s => Math.Round(s, 12)));
        var schedule = NoiseSchedule.Cosine(1000);
        var fromSchedule = NoiseLevels.LogSnr(schedule, 20);
        Assert.Equal(schedule.Sigma(999), fromSchedule[0]);
        Assert.Equal(schedule.Sigma(0), fromSchedule[19]);
        // Uniform in log-SNR = −2·log σ: equal differences.
        double step = Math.Log(fromSchedule[1] / fromSchedule[0]);
        for (int i = 1; i < 19; i++) Assert.Equal(step, Math.Log(fromSchedule[i + 1] / fromSchedule[i]), 10);
    }

    [Fact]
    public void TimestepSpacingsGiveTheLevelsOfTheDocumentedTimesteps()
    {
        var schedule = NoiseSchedule.Linear(1000);
        var options = new SamplerOptions(SamplerKind.Euler, 10);
        var expected = new[] { 999, 899, 799, 699, 599, 499, 399, 299, 199, 99 }.Select(schedule.Sigma).Append(0.0);
        Assert.Equal(expected, options.ResolveSigmas(schedule));
        var leading = new[] { 900, 800, 700, 600, 500, 400, 300, 200, 100, 0 }.Select(schedule.Sigma).Append(0.0);
        Assert.Equal(leading, (options with { Spacing = SamplerSpacing.Leading }).ResolveSigmas(schedule));
        var linspace = new[] { 999, 888, 777, 666, 555, 444, 333, 222, 111, 0 }.Select(schedule.Sigma).Append(0.0);
        Assert.Equal(linspace, (options with { Spacing = SamplerSpacing.Linspace }).ResolveSigmas(schedule));
        Assert.Equal(new[] { schedule.Sigma(500), schedule.Sigma(20), 0.0 }, (options with { TimestepList = new[] { 20, 500 } }).ResolveSigmas(schedule));
        Assert.Equal(1001, new SamplerOptions(SamplerKind.Heun).ResolveSigmas(schedule).Length);
        Assert.Equal(1001, new SamplerOptions(SamplerKind.Heun, Spacing: SamplerSpacing.Karras).ResolveSigmas(schedule).Length);
    }

    [Fact]
    public void AUserListIsCheckedAndEndsWithZero()
    {
        Assert.Equal(new[] { 80.0, 1.0, 0.0 }, NoiseLevels.Validate(new[] { 80.0, 1.0 }));
        Assert.Equal(new[] { 80.0, 1.0, 0.0 }, NoiseLevels.Validate(new[] { 80.0, 1.0, 0.0 }));
        Assert.Equal(new[] { double.PositiveInfinity, 1.0, 0.0 }, NoiseLevels.Validate(new[] { double.PositiveInfinity, 1.0 }));
        Assert.Throws<DiffuseException>(() => NoiseLevels.Validate(new[] { 1.0, 2.0 }));
        Assert.Throws<DiffuseException>(() => NoiseLevels.Validate(new[] { 1.0, 1.0 }));
        Assert.Throws<DiffuseException>(() => NoiseLevels.Validate(new[] { 1.0, -0.5 }));
        Assert.Throws<DiffuseException>(() => NoiseLevels.Validate(new[] { 2.0, double.NaN }));
        Assert.Throws<DiffuseException>(() => NoiseLevels.Validate(new[] { 2.0, double.PositiveInfinity }));
        Assert.Throws<DiffuseException>(() => NoiseLevels.Validate(new[] { 0.0 }));
        Assert.Throws<DiffuseException>(() => NoiseLevels.Validate(Array.Empty<double>()));
        var options = new SamplerOptions(SamplerKind.UniPc, SigmaList: new[] { 50.0, 5.0, 0.5 });
        Assert.Equal(new[] { 50.0, 5.0, 0.5, 0.0 }, options.ResolveSigmas(NoiseSchedule.Linear(1000)));
    }

    [Fact]
    public void FractionalTimestepsInterpolateLogSigmaBetweenTrainedLevels()
    {
        var schedule = NoiseSchedule.Cosine(1000);
        foreach (int n in new[] { 0, 1, 500, 998, 999 }) Assert.Equal(n, schedule.TimestepOfSigma(schedule.Sigma(n)));
        double between = Math.Sqrt(schedule.Sigma(500) * schedule.Sigma(501));   // the midpoint in log σ
        Assert.Equal(500.5, schedule.TimestepOfSigma(between), 9);
        Assert.Equal(between, schedule.SigmaOfTimestep(500.5), 9);
        Assert.Equal(schedule.Sigma(700), schedule.SigmaOfTimestep(700));
        Assert.Equal(0, schedule.TimestepOfSigma(schedule.Sigma(0) / 2));
        Assert.Equal(999, schedule.TimestepOfSigma(schedule.Sigma(999) * 2));
        foreach (double t in new[] { 0.25, 17.5, 333.3, 998.9 }) Assert.Equal(t, schedule.TimestepOfSigma(schedule.SigmaOfTimestep(t)), 9);
    }
}
