namespace Diffuse.Sampling;

/// <summary>How a sampler picks S of the T trained timesteps (the definitions of Lin et al. 2023, Table 2).</summary>
public enum TimestepSpacing
{
    /// <summary>round(linspace(0, T − 1, S)): includes the first and the last trained timestep.</summary>
    Linspace,
    /// <summary>k·⌊T/S⌋ for k = 0 … S − 1: starts at 0, never reaches the noisiest steps when T/S is not whole.</summary>
    Leading,
    /// <summary>round(T − k·T/S) − 1 for k = 0 … S − 1: starts at the noisiest step T − 1.</summary>
    Trailing,
}

/// <summary>Timestep subsequences for few-step sampling.</summary>
public static class Timesteps
{
    /// <summary>
    /// The timestep indices (0-based, n = t − 1) a sampler visits, in decreasing order, for <paramref name="steps"/> of
    /// <paramref name="trained"/> trained timesteps; <paramref name="steps"/> = 0 or ≥ T means every timestep.
    /// </summary>
    public static int[] Select(int trained, int steps, TimestepSpacing spacing)
    {
        if (trained < 1) throw new DiffuseException("the model has no timesteps.");
        if (steps < 0) throw new DiffuseException($"the number of sampling steps must be positive (got {steps}).");
        if (steps == 0 || steps >= trained) return Enumerable.Range(0, trained).Reverse().ToArray();
        var chosen = new int[steps];
        for (int k = 0; k < steps; k++)
        {
            chosen[k] = spacing switch
            {
                TimestepSpacing.Linspace => steps == 1 ? trained - 1 : (int)Math.Round((double)k * (trained - 1) / (steps - 1), MidpointRounding.ToEven),
                TimestepSpacing.Leading => k * (trained / steps),
                TimestepSpacing.Trailing => (int)Math.Round(trained - (double)k * trained / steps, MidpointRounding.ToEven) - 1,
                _ => throw new ArgumentOutOfRangeException(nameof(spacing)),
            };
        }
        return chosen.Distinct().OrderByDescending(n => n).ToArray();
    }

    /// <summary>Checks a user-given list: distinct indices within [0, T − 1]; returns it in decreasing order.</summary>
    public static int[] Validate(IEnumerable<int> timesteps, int trained)
    {
        var list = timesteps.ToArray();
        if (list.Length == 0) throw new DiffuseException("the timestep list is empty.");
        foreach (var n in list)
            if (n < 0 || n >= trained) throw new DiffuseException($"timestep {n} is outside the trained range 0 … {trained - 1}.");
        if (list.Distinct().Count() != list.Length) throw new DiffuseException("the timestep list repeats a timestep.");
        return list.OrderByDescending(n => n).ToArray();
    }
}
